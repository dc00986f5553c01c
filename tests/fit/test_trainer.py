"""The fitting engine on a small head: a short fit reduces the loss, resuming equals an uninterrupted
run, one and four devices agree, the shard_map step equals the pmap step, non-finite steps are skipped
and counted, densification grows the model mid-fit."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax import parallel
from vasa3d_jax.avatar import AvatarConfig, GaussianAvatar
from vasa3d_jax.avatar.io import Avatar
from vasa3d_jax.camera import intrinsics, look_at
from vasa3d_jax.fit import config as fit_config
from vasa3d_jax.fit import data as fit_data
from vasa3d_jax.fit import losses, trainer
from vasa3d_jax.head import HeadModel
from vasa3d_jax.motion_space import MotionSpace

SIZE = 24
STEPS = 6


def _sphere_head() -> HeadModel:
    """A 10 cm sphere (octahedron subdivided twice, 128 triangles) as a rigid head: every test here
    exercises the engine, not the face model, so a small mesh keeps the renders cheap."""
    v = [np.array(p, float) for p in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))]
    faces = [(0, 2, 4), (2, 1, 4), (1, 3, 4), (3, 0, 4), (2, 0, 5), (1, 2, 5), (3, 1, 5), (0, 3, 5)]
    for _ in range(2):
        mid, new = {}, []

        def midpoint(a, b):
            key = (min(a, b), max(a, b))
            if key not in mid:
                m = v[a] + v[b]
                v.append(m / np.linalg.norm(m))
                mid[key] = len(v) - 1
            return mid[key]

        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            new += [(a, ab, ca), (ab, b, bc), (ca, bc, c), (ab, bc, ca)]
        faces = new
    verts = 0.1 * np.stack(v).astype(np.float32)
    faces = np.asarray(faces, np.int32)
    centre = verts[faces].mean(1)
    names = ("face", "mouth", "eyes", "scalp", "neck")
    region = np.where(centre[:, 2] > 0.03, 0, np.where(centre[:, 1] < -0.06, 4, 3)).astype(np.int32)
    n = len(verts)
    rng = np.random.default_rng(0)
    weights = np.zeros((n, 5), np.float32)
    weights[:, 0] = 1.0
    return HeadModel(
        v_template=jnp.asarray(verts), faces=jnp.asarray(faces), face_region=jnp.asarray(region),
        shapedirs=jnp.zeros((n, 3, 2), jnp.float32),
        exprdirs=jnp.asarray(0.01 * rng.normal(size=(n, 3, 2)), jnp.float32), expression_pose=None,
        posedirs=None, j_regressor=jnp.full((5, n), 1.0 / n, jnp.float32),
        lbs_weights=jnp.asarray(weights), landmark_vertices=None, lmk_faces_idx=None,
        lmk_bary_coords=None, laplacian_edges=None, region_names=names, kind="template")


@pytest.fixture(scope="module")
def setup():
    return make_setup()


def make_setup():
    """(head, motion space, dataset, FitConfig) of the small fits here (also test_distributed's workers)."""
    head, space = _sphere_head(), MotionSpace.builtin()
    acfg = AvatarConfig(base_hidden=16, residual_width=16, residual_depth=2, bucket=64)
    avatar = GaussianAvatar(head, space, acfg)
    # Ground truth: per-triangle colours with a pattern and a rotated, shifted head.
    centre = np.asarray(head.v_template)[np.asarray(head.faces)].mean(1)
    colors = 0.5 + 0.4 * np.sin(40.0 * centre)
    gt = avatar.init(jax.random.key(3), colors=colors.astype(np.float32))
    rng = np.random.default_rng(0)
    n = 8
    x = np.zeros((n, space.size), np.float32)
    x[:, space.index("rot_x"):space.index("rot_x") + 3] = rng.normal(0, 0.2, (n, 3))
    view = np.asarray(look_at((0.0, 0.0, 0.5), (0.0, 0.0, 0.0)))
    K = np.asarray(intrinsics(2.0 * SIZE, 2.0 * SIZE, SIZE / 2, SIZE / 2))
    data = fit_data.render_dataset(Avatar(avatar, gt), x, np.repeat(view[None], n, 0),
                                   np.repeat(K[None], n, 0), SIZE, SIZE, np.zeros(3))
    loss = losses.LossConfig(lpips=0.0, consistency=0.0, adversarial=0.0, sharpening=0.0,
                             symmetry=0.05, main_steps=STEPS, sharpen_steps=0)
    cfg = fit_config.FitConfig(batch_size=4, losses=loss, avatar=acfg, init_colors="random",
                               densify=fit_config.DensifySchedule(start=10 ** 9), symmetry_every=3,
                               lr=fit_config.LearningRates(color=0.05, gaussian_eps=1e-8), log_every=1, save_every=2,
                               preview_every=3)
    return head, space, data, cfg


def _fit(setup, workdir, devices, **kw):
    head, space, data, cfg = setup
    data = kw.pop("data", data)
    cfg = kw.pop("cfg", cfg)
    return trainer.fit(data, cfg, workdir, head=head, space=space, devices=devices, progress=False, **kw)


def _assert_params_close(a, b, atol):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=atol,
                                   err_msg=jax.tree_util.keystr(path))


@pytest.fixture(scope="module")
def uninterrupted(setup, cpu_devices, tmp_path_factory):
    wd = tmp_path_factory.mktemp("fit_a")
    return _fit(setup, wd, cpu_devices[:1])


def test_short_fit_reduces_the_loss_and_writes_its_outputs(uninterrupted):
    rows = [json.loads(line) for line in (uninterrupted.workdir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1))
    assert steps[-1]["loss"] < 0.8 * steps[0]["loss"]
    assert steps[-1]["psnr"] > steps[0]["psnr"] + 1.0
    assert all(r["finite"] == 1.0 for r in steps) and uninterrupted.skipped == 0
    assert sorted(p.name for p in (uninterrupted.workdir / "previews").iterdir()) == [
        "previews.mp4", "step_0000003.png", "step_0000006.png"]
    assert (uninterrupted.workdir / "ckpt" / str(STEPS)).exists()
    assert uninterrupted.steps == STEPS
    colors = np.asarray(uninterrupted.params["gaussians"].colors)
    assert colors.min() >= 0.0 and colors.max() <= 1.0  # step (6) projects RGB colours


def test_colour_projection_clips_rgb_and_leaves_sh():
    g = GaussianAvatar(_sphere_head(), MotionSpace.builtin(),
                       AvatarConfig(base_hidden=16, residual_width=16, residual_depth=2, bucket=64))
    params = g.init(jax.random.key(0))
    rgb = params["gaussians"].colors
    wild = {**params, "gaussians": dataclasses.replace(params["gaussians"], colors=rgb * 4.0 - 2.0)}
    out = np.asarray(trainer.project_colors(wild)["gaussians"].colors)
    # bitwise: the projection is a clip, which returns its inputs or the bounds exactly
    np.testing.assert_array_equal(out, np.clip(np.asarray(wild["gaussians"].colors), 0.0, 1.0))
    sh = {**params, "gaussians": dataclasses.replace(params["gaussians"], colors=jnp.full((rgb.shape[0], 4, 3), 3.0))}
    # bitwise: SH colours pass through the projection untouched
    np.testing.assert_array_equal(np.asarray(trainer.project_colors(sh)["gaussians"].colors), 3.0)


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(setup, cpu_devices, tmp_path, uninterrupted):
    first = _fit(setup, tmp_path, cpu_devices[:1], stop_after=3)
    assert first.steps == 3
    resumed = _fit(setup, tmp_path, cpu_devices[:1])
    assert resumed.steps == STEPS
    _assert_params_close(resumed.params, uninterrupted.params, atol=1e-6)


@pytest.mark.slow
def test_one_and_four_devices_give_the_same_parameters(setup, cpu_devices, tmp_path, uninterrupted):
    four = _fit(setup, tmp_path, cpu_devices)
    rows = [[json.loads(line) for line in (r.workdir / "metrics.jsonl").read_text().splitlines()]
            for r in (four, uninterrupted)]
    np.testing.assert_allclose([r["loss"] for r in rows[0] if "loss" in r],
                               [r["loss"] for r in rows[1] if "loss" in r], rtol=1e-5)
    # Adam divides by sqrt(v): gradient entries near zero whose last bits differ (the devices sum in
    # another order) can move by up to one learning rate per step; the setup's Adam eps of 1e-8 for
    # the Gaussians (GaussianAvatars: 1e-15) keeps such entries from taking full steps.
    _assert_params_close(four.params, uninterrupted.params, atol=1e-3)


@pytest.mark.slow
def test_non_finite_steps_are_skipped_and_counted(setup, cpu_devices, tmp_path):
    head, space, data, cfg = setup
    frames = data.frames.copy()
    frames[0, 3, 3] = np.nan
    bad = dataclasses.replace(data, frames=frames)
    result = _fit(setup, tmp_path, cpu_devices[:1], data=bad)
    expected = sum(0 in fit_data.batch_indices(cfg.seed, s, data.num, cfg.batch_size) for s in range(STEPS))
    assert 0 < expected < STEPS  # the check means something: some steps good, some bad
    assert result.skipped == expected
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(result.params))
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["finite"] == 0.0 for r in rows if "finite" in r) == expected


@pytest.mark.slow
def test_step_runs_under_pmap_like_under_shard_map(setup, cpu_devices):
    head, space, data, cfg = setup
    avatar = GaussianAvatar(head, space, cfg.avatar)
    # Built under jit as fit does: every leaf its own buffer (the train step donates them).
    state = jax.jit(lambda k: trainer.init_state(avatar, cfg, k, SIZE, SIZE))(jax.random.key(0))
    body = trainer.make_step_body(avatar, cfg, SIZE, SIZE, data.pivot, capacity=2048)
    idx = fit_data.batch_indices(cfg.seed, 0, data.num, 4)
    batch = {**data.batch(idx), "keys": parallel.example_keys(cfg.seed, 0, 4)}
    n = 4
    devices = cpu_devices[:n]
    stacked = jax.tree.map(lambda a: jnp.stack([a] * n), state)
    split = jax.tree.map(lambda a: a.reshape((n, a.shape[0] // n) + a.shape[1:]), batch)
    # No LPIPS term here, so the third argument is None (closed over: pmap maps arrays only).
    s_pmap, m_pmap = jax.pmap(lambda s, b: body(s, b, None), axis_name="data", devices=devices)(
        stacked, split)
    # Last: the shard_map step donates (and so deletes) the state it is given.
    mesh = parallel.data_mesh(devices)
    s_shard, m_shard = trainer.make_train_step(body, mesh)(
        parallel.replicate(state, mesh), parallel.shard_batch(batch, mesh), None)
    _assert_params_close(jax.tree.map(lambda a: a[0], s_pmap.params), s_shard.params, atol=1e-6)
    np.testing.assert_allclose(float(m_pmap["loss"][0]), float(m_shard["loss"]), rtol=1e-6)


@pytest.mark.slow
def test_densification_grows_the_model_during_the_fit(setup, cpu_devices, tmp_path):
    head, space, data, cfg = setup
    dense = dataclasses.replace(cfg, densify=fit_config.DensifySchedule(
        start=2, every=2, until=4, grad_threshold=0.0, percent_dense=1.0, opacity_reset_every=0))
    result = _fit(setup, tmp_path, cpu_devices[:1], cfg=dense)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    reports = [r["densify"] for r in rows if "densify" in r]
    assert len(reports) == 2 and reports[0]["num_cloned"] > 0 and reports[0]["overflow"] == 0
    assert int(np.sum(result.params["binding"].active)) > head.num_faces
    assert all(r["finite"] == 1.0 for r in rows if "finite" in r)


def test_too_small_capacity_is_reported_and_recovered(setup, cpu_devices, tmp_path, uninterrupted):
    """(10): a step whose renders overflow is logged, not applied, and redone at a larger capacity,
    so the fit equals the one that started with a measured capacity."""
    result = _fit(setup, tmp_path, cpu_devices[:1], stop_after=2, isect_capacity=64)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    resized = [r for r in rows if "isect_overflow" in r and "loss" not in r]
    assert len(resized) == 1 and resized[0]["step"] == 1 and resized[0]["isect_overflow"] > 0
    assert resized[0]["isect_capacity"] > 64
    steps = [r for r in rows if "loss" in r]
    assert [r["isect_overflow"] for r in steps] == [0.0, 0.0] and result.steps == 2
    reference = [json.loads(line) for line in (uninterrupted.workdir / "metrics.jsonl").read_text().splitlines()]
    np.testing.assert_allclose([r["loss"] for r in steps], [r["loss"] for r in reference if "loss" in r][:2],
                               rtol=1e-6)


def test_devices_for_batch_divide_the_batch(cpu_devices):
    assert parallel.devices_for_batch(1, cpu_devices) == cpu_devices[:1]
    assert parallel.devices_for_batch(6, cpu_devices) == cpu_devices[:3]
    assert parallel.devices_for_batch(8, cpu_devices) == cpu_devices[:4]
