"""The web format: what the files say (decoded as the browser player decodes them) is the avatar."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.export import bake, decode_frame, export_web, read_web, write_web
from vasa3d_jax.export.web import BAKE_CHUNK, apply_frames, frame_bytes


@jax.jit
def _noisy(tree, key):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten([a + 0.03 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])


def test_baked_rig_decodes_to_the_avatar(avatar, motion, frames, tmp_path):
    # A non-zero residual deformation (the template's residual networks output exactly zero).
    params = {**avatar.params, "d_exp": _noisy(avatar.params["d_exp"], jax.random.key(1)),
              "d_pose": _noisy(avatar.params["d_pose"], jax.random.key(2))}
    noisy = dataclasses.replace(avatar, params=params)
    rig = bake(noisy, motion)
    assert 0 < rig.meta["residual_rank"] <= len(motion) and rig.meta["residual_rel_error"] < 0.01
    summary = write_web(rig, tmp_path, player=False)
    assert summary["sizes"]["frames.bin"] == len(motion) * frame_bytes(rig)
    back = read_web(tmp_path)
    for name in ("faces", "parent", "means_local", "colors", "offsets", "rigid", "coeffs", "residual_basis"):
        np.testing.assert_array_equal(getattr(back, name), getattr(rig, name))

    live = np.asarray(params["binding"].active)
    pad = np.concatenate([motion, np.repeat(motion[-1:], BAKE_CHUNK - len(motion), 0)])
    _, _, ref = apply_frames(noisy.model, params, jnp.asarray(pad))  # bake's own compiled program
    ref = jax.tree.map(lambda a: np.asarray(a)[:, live], ref)
    assert np.abs(ref.colors - np.asarray(avatar.params["gaussians"].colors)[live]).max() > 1e-3  # residual acts
    for t in frames.values():
        g = decode_frame(back, t)
        # vertex_step / 2 = 2.5 um of vertex quantisation, moved through the triangle frames, plus the
        # rank-k residual's error
        np.testing.assert_allclose(g.means, ref.means[t], atol=2e-5)
        np.testing.assert_allclose(g.scales, ref.scales[t], rtol=5e-3, atol=1e-6)
        np.testing.assert_allclose(g.opacities, ref.opacities[t], atol=1e-3)
        np.testing.assert_allclose(g.colors, ref.colors[t], atol=1e-3)
        dots = np.abs(np.sum(g.quats * ref.quats[t], -1)) / np.linalg.norm(ref.quats[t], axis=-1)
        assert dots.min() > 1 - 1e-4


def test_template_rig_has_no_residual_and_its_size(avatar, motion, tmp_path):
    rig = bake(avatar, motion)
    assert rig.meta["residual_rank"] == 0 and rig.residual_basis.shape[0] == 0
    assert not rig.residual_mean.any()
    # The neutral frames are rigid: no vertex offset at all.
    assert not rig.offsets[0].any()
    assert 0 < len(rig.moving) <= len(rig.neutral)
    assert frame_bytes(rig) == 28 + 4 * int(np.ceil(6 * len(rig.moving) / 4))
    summary = write_web(rig, tmp_path, audio=np.zeros(16000, np.float32), player=True)
    assert summary["rig_kB_per_s"] == pytest.approx(frame_bytes(rig) * 25 / 1e3, rel=1e-3)
    assert {"index.html", "player.js", "rig.js", "splat.js", "audio.wav"} <= set(summary["sizes"])
    assert (tmp_path / "lib" / "three.module.js").is_file()
    assert (tmp_path / "lib" / "addons" / "controls" / "OrbitControls.js").is_file()
    assert "cdn" not in (tmp_path / "index.html").read_text().lower()


def test_bad_inputs_say_what_to_do(avatar, tmp_path):
    with pytest.raises(ValueError, match="motion .* or audio"):
        export_web(avatar, tmp_path)
    with pytest.raises(ValueError, match="expected \\(T > 0, D\\)"):
        bake(avatar, np.zeros((0, avatar.space.size)))
    with pytest.raises(FileNotFoundError, match="vasa3d export"):
        read_web(tmp_path)
