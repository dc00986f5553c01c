"""Gradients: the custom VJP against autodiff of the dense reference (random cotangents), and the
dense reference against finite differences in float64."""

import functools
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from render_scenes import front_camera, random_scene

from vasa3d_jax.camera import intrinsics, look_at
from vasa3d_jax.kernels.splat import rasterize
from vasa3d_jax.render import Camera, Gaussians, binning, dense_render, render
from vasa3d_jax.kernels.splat.reference import composite_ref

W, H, N = 38, 22, 96
CAM = front_camera(W, H)
_HAS_PALLAS = importlib.util.find_spec("vasa3d_jax.kernels.splat.pallas_fwd") is not None
BACKENDS = ["xla", pytest.param("pallas", marks=pytest.mark.skipif(not _HAS_PALLAS, reason="no Pallas kernels"))]


def _assert_grads_close(got, want, rtol=2e-4):
    """Per-leaf check scaled by the leaf's largest entry (gradients sum many pixel terms)."""
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
        a, b = np.asarray(a), np.asarray(b)
        scale = max(np.abs(b).max(), 1e-3)
        assert np.abs(b).max() > 0, f"{jax.tree_util.keystr(path)}: reference gradient is all zero"
        np.testing.assert_allclose(a, b, atol=rtol * scale, rtol=0, err_msg=jax.tree_util.keystr(path))


def _scene(key):
    g = random_scene(key, N)
    # A few fully opaque Gaussians aimed at pixel centres hit the 0.999 clamp (gated gradients).
    return g.replace(opacities=g.opacities.at[:12].set(1.0))


@functools.partial(jax.jit, static_argnames=("backend",))
def _composite_grads(means2d, conics, opac, colors, bg, ct_out, ct_alpha, *, backend):
    depths = jnp.arange(means2d.shape[0], dtype=jnp.float32) * 0.01
    radii = jnp.full((means2d.shape[0], 2), 40, jnp.int32)
    bins = binning.bin_gaussians(means2d, radii, depths, conics, opac, width=W, height=H, tile_size=16, capacity=8 * N)

    def ours(*x):
        out, alpha, _ = rasterize(*x, bins.isect_gids, bins.tile_offsets, width=W, height=H, tile_size=16,
                                  implementation=backend)
        return jnp.sum(out * ct_out) + jnp.sum(alpha * ct_alpha)

    def dense(*x):
        out, alpha = composite_ref(*x[:4], depths, jnp.ones(means2d.shape[0], bool), x[4], width=W, height=H)
        return jnp.sum(out * ct_out) + jnp.sum(alpha * ct_alpha)

    args = (means2d, conics, opac, colors, bg)
    return jax.grad(ours, argnums=range(5))(*args), jax.grad(dense, argnums=range(5))(*args)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compositing_vjp_matches_dense_autodiff(backend):
    """Every input of the compositing stage, with the clamp active at some pixels."""
    k = jax.random.split(jax.random.PRNGKey(0), 7)
    n = 48
    means2d = jax.random.uniform(k[0], (n, 2)) * jnp.array([W, H])
    means2d = means2d.at[:6].set(jnp.floor(means2d[:6]) + 0.5)  # exactly on pixel centres
    s = jax.random.uniform(k[1], (n, 2), minval=1.0, maxval=6.0)
    rho = jax.random.uniform(k[2], (n,), minval=-0.6, maxval=0.6)
    det = s[:, 0] ** 2 * s[:, 1] ** 2 * (1 - rho ** 2)
    conics = jnp.stack([s[:, 1] ** 2, -rho * s[:, 0] * s[:, 1], s[:, 0] ** 2], -1) / det[:, None]
    opac = jax.random.uniform(k[3], (n,), minval=0.1, maxval=1.0).at[:6].set(1.0)
    colors = jax.random.uniform(k[4], (n, 4))
    bg = jnp.array([0.1, 0.2, 0.3, 0.0])
    ct_out = jax.random.normal(k[5], (H, W, 4))
    ct_alpha = jax.random.normal(k[6], (H, W))
    got, want = _composite_grads(means2d, conics, opac, colors, bg, ct_out, ct_alpha, backend=backend)
    _assert_grads_close(got, want)


@functools.partial(jax.jit, static_argnames=("backend", "antialiased"))
def _render_grads(g, bg, off, ct, *, backend, antialiased=False):
    def loss(out_rgb, alpha, depth):
        return jnp.sum(out_rgb * ct[..., :3]) + jnp.sum(alpha * ct[..., 3]) + jnp.sum(depth * ct[..., 4])

    def ours(g, bg, off):
        o = render(g, CAM, bg, backend=backend, antialiased=antialiased, means2d_offset=off)
        return loss(o.rgb, o.alpha, o.depth)

    def dense(g, bg, off):
        return loss(*dense_render(g, CAM, bg, antialiased=antialiased, means2d_offset=off))

    radii = render(g, CAM, bg, backend=backend, antialiased=antialiased).radii
    return jax.grad(ours, argnums=(0, 1, 2))(g, bg, off), jax.grad(dense, argnums=(0, 1, 2))(g, bg, off), radii


@pytest.mark.parametrize("backend,antialiased,sh_degree", [
    ("xla", False, None), ("xla", True, 3),
    pytest.param("pallas", False, None, marks=[pytest.mark.slow, pytest.mark.skipif(not _HAS_PALLAS,
                                                                                     reason="no Pallas kernels")]),
])
def test_render_vjp_matches_dense_autodiff(backend, antialiased, sh_degree):
    """Means, quats, scales, opacities, colours/SH, background and the screen-space means2d
    (through ``means2d_offset``: the gradient densification uses), through projection and SH."""
    g = random_scene(jax.random.PRNGKey(1), N, sh_degree=sh_degree)
    g = g.replace(opacities=g.opacities.at[:12].set(1.0))
    ct = jax.random.normal(jax.random.PRNGKey(2), (H, W, 5))
    # The depth channel divides by alpha; keep its cotangent small so the comparison is well scaled.
    ct = ct.at[..., 4].multiply(0.05)
    got, want, radii = _render_grads(g, jnp.array([0.3, 0.6, 0.1]), jnp.zeros((N, 2)), ct, backend=backend,
                                     antialiased=antialiased)
    _assert_grads_close(got, want, rtol=5e-4)
    v_means2d = np.asarray(got[2])
    vis = np.asarray(radii).max(-1) > 0
    assert np.abs(v_means2d[vis]).max() > 0 and not np.any(v_means2d[~vis])


def test_dense_reference_against_finite_differences_float64():
    with jax.enable_x64(True):
        k = jax.random.split(jax.random.PRNGKey(5), 5)
        n = 5
        f64 = jnp.float64
        g = Gaussians(
            means=jax.random.uniform(k[0], (n, 3), f64, -0.3, 0.3),
            quats=jax.random.normal(k[1], (n, 4), f64),
            scales=jax.random.uniform(k[2], (n, 3), f64, 0.08, 0.2),
            opacities=jax.random.uniform(k[3], (n,), f64, 0.2, 0.9),
            colors=0.3 * jax.random.normal(k[4], (n, 4, 3), f64),  # SH degree 1
        )
        cam = Camera(viewmat=look_at((0.1, 0.2, 2.0), (0.0, 0.0, 0.0)).astype(f64),
                     K=intrinsics(14.0, 14.0, 6.0, 4.0).astype(f64), width=12, height=8)
        ct = jax.random.normal(jax.random.PRNGKey(6), (8, 12, 5), f64)

        def loss(means, quats, scales, opacities, colors, bg):
            g2 = Gaussians(means=means, quats=quats, scales=scales, opacities=opacities, colors=colors)
            rgb, alpha, depth = dense_render(g2, cam, bg, antialiased=True)
            return jnp.sum(rgb * ct[..., :3]) + jnp.sum(alpha * ct[..., 3]) + jnp.sum(depth * ct[..., 4])

        args = (g.means, g.quats, g.scales, g.opacities, g.colors, jnp.array([0.2, 0.4, 0.6], f64))
        check_grads(loss, args, order=1, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-6)
