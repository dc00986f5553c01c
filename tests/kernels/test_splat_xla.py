"""The XLA compositing path's scheduling: batching (leading dims and nested vmap) and the window
parameters change nothing, on the scenes of ``test_splat_pallas.py``."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.kernels.splat import xla
from vasa3d_jax.kernels.splat.config import SplatConfig

from splat_scenes import numpy_composite_fwd
from test_splat_pallas import D, N, SCENES, TS, H, W, _args, _assert_grads_close, _build, _bwd_ref, _cotangents, _fwd_ref


def test_leading_dims_and_nested_vmap_equal_per_item_calls():
    """Two scenes stacked as a leading dim, and two nested vmaps (the outer one over backgrounds /
    cotangents only): the tiles of all images are composited together, results unchanged."""
    items = [_args(*_build(kind)[:1], *_build(kind)[2:]) for kind in SCENES[:2]]
    scenes = [jnp.stack(x) for x in zip(*items)]
    fwd, bwd = _fwd_ref(H, W, TS), _bwd_ref(H, W, TS)
    saved = [fwd(*item)[1:] for item in items]
    cot = [_cotangents(20 + i) for i in range(2)]
    v_out, v_alpha = jnp.stack([c[0] for c in cot]), jnp.stack([c[1] for c in cot])

    stacked_f = fwd(*scenes)  # leading dims, no vmap
    stacked_b = bwd(*scenes, *(jnp.stack(x) for x in zip(*saved)), v_out, v_alpha)
    backgrounds = jnp.stack([scenes[4], 1.0 - scenes[4]])
    nested_f = jax.jit(jax.vmap(jax.vmap(fwd), in_axes=(None,) * 4 + (0, None, None)))(*scenes[:4], backgrounds, *scenes[5:])
    inner_b = jax.vmap(bwd, in_axes=(0,) * 9 + (None,) * 2)
    nested_b = jax.jit(jax.vmap(inner_b, in_axes=(None,) * 9 + (0, 0)))(
        *scenes, *(jnp.stack(x) for x in zip(*saved)), v_out, v_alpha)
    for j, item in enumerate(items):
        want_f = fwd(*item)
        for g, w in zip(stacked_f, want_f):
            np.testing.assert_allclose(np.asarray(g[j]), np.asarray(w), rtol=0, atol=1e-6)
        _assert_grads_close([g[j] for g in stacked_b], bwd(*item, *saved[j], v_out[j], v_alpha[j]), 1e-6, f"stacked {j}")
        for i in range(2):
            want_f = fwd(*item[:4], backgrounds[i, j], *item[5:])
            for g, w in zip(nested_f, want_f):
                np.testing.assert_allclose(np.asarray(g[i, j]), np.asarray(w), rtol=0, atol=1e-6)
            want_b = bwd(*item, *saved[j], v_out[i], v_alpha[i])
            _assert_grads_close([g[i, j] for g in nested_b], want_b, 1e-6, f"nested {i},{j}")


@pytest.mark.parametrize("steps,unroll,bwd_unroll,window", [(1, 1, 1, 1), (6, 3, 2, 2), (32, 4, 8, 64)])
def test_schedule_does_not_change_results(steps, unroll, bwd_unroll, window):
    """Rounds of 1 to 32 entries, unrolled or not, windows of 1 to 64 tiles (more than the 6
    tiles there are): the same image bit for bit and the same gradients to rounding (the pixel
    sums are matrix products whose float32 rounding depends on the round's shape: both schedules
    are ~1e-6 of the largest gradient from float64)."""
    scene, _, gids, offsets = _build("opaque")
    args = _args(scene, gids, offsets)
    cfg = SplatConfig(tile_size=TS, steps=steps, unroll=unroll, bwd_unroll=bwd_unroll, window=window)
    fwd = jax.jit(functools.partial(xla.rasterize_fwd_xla, width=W, height=H, tile_size=TS, config=cfg))
    bwd = jax.jit(functools.partial(xla.rasterize_bwd_xla, width=W, height=H, tile_size=TS, config=cfg))
    got, want = fwd(*args), _fwd_ref(H, W, TS)(*args)
    for g, w in zip(got, want):
        # bitwise: the schedule only regroups the same per-pixel sequence (docstring)
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    v_out, v_alpha = _cotangents(5)
    _assert_grads_close(bwd(*args, *want[1:], v_out, v_alpha), _bwd_ref(H, W, TS)(*args, *want[1:], v_out, v_alpha),
                        3e-6, f"schedule {steps},{unroll},{bwd_unroll},{window}")


def test_forward_without_n_contrib_gives_the_same_image():
    """A render that is not differentiated skips n_contrib: same image and alpha, n_contrib zeros;
    differentiating through ``rasterize`` still uses the full forward."""
    from vasa3d_jax.kernels.splat import rasterize

    scene, _, gids, offsets = _build("random")
    args = _args(scene, gids, offsets)
    lean = jax.jit(functools.partial(xla.rasterize_fwd_xla, width=W, height=H, tile_size=TS, with_n_contrib=False))
    got, want = lean(*args), _fwd_ref(H, W, TS)(*args)
    # bitwise: skipping n_contrib leaves the compositing untouched
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[1]))
    assert not np.asarray(got[2]).any() and np.asarray(want[2]).any()

    def loss(flag, *x):
        out, alpha, _ = rasterize(*x, *args[5:], width=W, height=H, tile_size=TS, with_n_contrib=flag)
        return jnp.sum(out * jnp.arange(D)) + jnp.sum(alpha)

    for a, b in zip(jax.grad(functools.partial(loss, False), argnums=range(5))(*args[:5]),
                    jax.grad(functools.partial(loss, True), argnums=range(5))(*args[:5])):
        # bitwise: determinism (same inputs, same program) is the contract
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("d", [1, 2, 4])
def test_channel_pairs_equal_the_float64_loop(d):
    """The XLA forward carries colour channels in complex pairs (an odd D gets a zero channel):
    D = 1, 2, 4 equal gsplat's per-pixel loop in float64, last contributors included."""
    scene, depths, gids, offsets = _build("random", H, W, N, d, TS)
    out, t_final, n_contrib = _fwd_ref(H, W, TS)(*_args(scene, gids, offsets))
    out_np, t_np, last_np = numpy_composite_fwd(scene, depths, H, W)
    assert out.shape == (H, W, d)
    assert np.abs(np.asarray(out) - out_np).max() <= 1e-5
    assert np.abs(np.asarray(t_final) - t_np).max() <= 1e-5
    ys, xs = np.mgrid[:H, :W]
    start = offsets[(ys // TS) * -(-W // TS) + xs // TS]
    n_contrib = np.asarray(n_contrib)
    last = np.where(n_contrib > 0, gids[np.maximum(start + n_contrib - 1, 0)], -1)
    np.testing.assert_array_equal(last, last_np)
