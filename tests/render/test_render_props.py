"""Properties of ``render``: permutation and rigid-motion invariance, opacity 0, batching and vmap,
capacity sizing and overflow reporting, input errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from render_scenes import front_camera, random_scene

from vasa3d_jax.render import Camera, render, required_capacity
from vasa3d_jax.render.projection import quat_to_rotmat

W, H, N = 38, 22, 128
CAM = front_camera(W, H)
BG = jnp.array([0.2, 0.5, 0.9])
_render = jax.jit(lambda g, viewmat, bg: render(g, CAM.replace(viewmat=viewmat), bg, backend="xla"))


def _distinct_depth_scene(key):
    g = random_scene(key, N)
    # Distinct depths (no ties), so the sort order does not depend on Gaussian indices.
    return g.replace(means=g.means.at[:, 2].set(jnp.linspace(-0.5, 0.5, N)[jax.random.permutation(key, N)]))


def test_permutation_invariance():
    g = _distinct_depth_scene(jax.random.PRNGKey(0))
    perm = jax.random.permutation(jax.random.PRNGKey(1), N)
    a = _render(g, CAM.viewmat, BG)
    b = _render(jax.tree.map(lambda x: x[perm], g), CAM.viewmat, BG)
    np.testing.assert_allclose(a.rgb, b.rgb, atol=1e-6)
    np.testing.assert_allclose(a.alpha, b.alpha, atol=1e-6)
    np.testing.assert_array_equal(a.num_isects, b.num_isects)


def _quat_mul(p, q):
    w1, x1, y1, z1 = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
    w2, x2, y2, z2 = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return jnp.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                      w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], axis=-1)


def test_rigid_motion_of_scene_and_camera():
    g = _distinct_depth_scene(jax.random.PRNGKey(2))
    q = jnp.array([0.9, 0.2, -0.3, 0.25])
    q = q / jnp.linalg.norm(q)
    rot, t = quat_to_rotmat(q), jnp.array([0.3, -1.0, 2.0])
    moved = g.replace(means=g.means @ rot.T + t, quats=_quat_mul(q, g.quats))
    m = jnp.eye(4).at[:3, :3].set(rot).at[:3, 3].set(t)  # world -> moved world
    a = _render(g, CAM.viewmat, BG)
    b = _render(moved, CAM.viewmat @ jnp.linalg.inv(m), BG)
    np.testing.assert_allclose(a.rgb, b.rgb, atol=2e-5)
    np.testing.assert_allclose(a.alpha, b.alpha, atol=2e-5)
    np.testing.assert_allclose(a.depth, b.depth, atol=1e-4)


def test_opacity_zero_gives_background():
    g = random_scene(jax.random.PRNGKey(3), N)
    out = _render(g.replace(opacities=jnp.zeros(N)), CAM.viewmat, BG)
    # bitwise: nothing visible composites 0 + 1 * background
    np.testing.assert_array_equal(out.rgb, jnp.broadcast_to(BG, (H, W, 3)))
    np.testing.assert_array_equal(out.alpha, 0.0)
    assert int(out.num_visible) == 0 and int(out.num_isects) == 0


def test_batched_gaussians_and_cameras_broadcast_and_vmap():
    """(2, 1) Gaussian sets x (3,) cameras -> (2, 3) images, each equal to its unbatched render."""
    gs = [random_scene(jax.random.PRNGKey(10 + i), N) for i in range(2)]
    views = jnp.stack([CAM.viewmat @ jnp.eye(4).at[0, 3].set(dx) for dx in (-0.2, 0.0, 0.3)])
    g = jax.tree.map(lambda *x: jnp.stack(x)[:, None], *gs)
    out = jax.jit(lambda g, v: render(g, CAM.replace(viewmat=v, K=jnp.broadcast_to(CAM.K, (3, 3, 3))), BG,
                                      backend="xla"))(g, views)
    assert out.rgb.shape == (2, 3, H, W, 3) and out.num_isects.shape == (2, 3) and out.radii.shape == (2, 3, N, 2)
    for i in range(2):
        for j in range(3):
            ref = _render(gs[i], views[j], BG)
            np.testing.assert_allclose(out.rgb[i, j], ref.rgb, atol=1e-6)
            np.testing.assert_array_equal(out.num_isects[i, j], ref.num_isects)
    # jax.vmap of a function that renders gives the same as the batched call.
    vm = jax.jit(jax.vmap(lambda v: render(gs[0], CAM.replace(viewmat=v), BG, backend="xla").rgb))(views)
    np.testing.assert_allclose(vm, out.rgb[0], atol=1e-6)


def test_capacity_sizing_and_overflow_reporting():
    g = random_scene(jax.random.PRNGKey(4), N)
    need = required_capacity(g, CAM)
    full = _render(g, CAM.viewmat, BG)
    assert need == int(full.num_isects) > 0 and int(full.isect_overflow) == 0
    short = jax.jit(lambda g: render(g, CAM, BG, backend="xla", capacity=need - 7))(g)
    assert int(short.isect_overflow) == 7  # never silent
    assert int(short.max_tile_count) == int(full.max_tile_count)  # counted before truncation


def test_bad_inputs_raise_clear_errors():
    g = random_scene(jax.random.PRNGKey(5), N)
    with pytest.raises(ValueError, match="quats"):
        render(g.replace(quats=g.quats[:, :3]), CAM)
    with pytest.raises(ValueError, match="SH"):
        render(g.replace(colors=jnp.zeros((N, 5, 3))), CAM)
    with pytest.raises(ValueError, match="backend"):
        render(g, CAM, backend="cuda")
    with pytest.raises(ValueError, match="viewmat"):
        render(g, Camera(viewmat=jnp.eye(3), K=CAM.K, width=W, height=H))


def test_auto_backend_is_the_xla_path(monkeypatch):
    """backend="auto" picks the tested XLA path on every platform, a GPU included (the Pallas kernels
    are one argument away until a GPU run passes the GPU-marked tests)."""
    from vasa3d_jax.render import api

    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert api._implementation("auto") == "xla" and api._implementation("pallas") == "pallas"
    monkeypatch.undo()
    g = random_scene(jax.random.PRNGKey(5), 40)
    cam = front_camera(32, 32)
    # bitwise: determinism (same inputs, same program) is the contract
    np.testing.assert_array_equal(np.asarray(render(g, cam, backend="auto").rgb),
                                  np.asarray(render(g, cam, backend="xla").rgb))
