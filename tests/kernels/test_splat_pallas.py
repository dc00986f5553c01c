"""The Pallas splatting kernels against the pure-JAX reference, the renderer's dense oracle and an
independent NumPy loop.

Every comparison runs the kernels in interpret mode on CPU; on a GPU machine the same comparisons
also run compiled with Triton and (Hopper and newer) Mosaic GPU. Lowering for CUDA with both
backends is checked on CPU through ``jax.export``. Backward passes use random cotangents.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.kernels.splat import api, pallas_bwd, pallas_fwd, reference, xla

from splat_scenes import bin_scene, make_scene, numpy_composite_bwd, numpy_composite_fwd

H, W, TS = 20, 36, 16  # 2 x 3 tiles, neither side a multiple of the tile
N, D = 48, 3
CAPACITY = 1024  # static tile-list length; the rest of the list is padding
FIELDS = ("means2d", "conics", "opacities", "colors", "background")
GRAD_NAMES = ("v_means2d", "v_conics", "v_opacities", "v_colors", "v_background")


def _has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def _hopper() -> bool:
    return _has_gpu() and float(getattr(jax.devices("gpu")[0], "compute_capability", "0")) >= 9.0


# (interpret, backend): interpret mode everywhere, compiled kernels where a GPU is present.
MODES = [
    pytest.param((True, "triton"), id="interpret"),
    pytest.param((False, "triton"), id="triton",
                 marks=[pytest.mark.gpu,
                        pytest.mark.skipif(not _has_gpu(), reason="needs a CUDA GPU")]),
    pytest.param((False, "mosaic_gpu"), id="mosaic_gpu",
                 marks=[pytest.mark.gpu,
                        pytest.mark.skipif(not _hopper(), reason="needs a Hopper (sm_90+) GPU")]),
]


@functools.lru_cache(maxsize=None)
def _fwd(height, width, tile_size, interpret, backend):
    return jax.jit(functools.partial(pallas_fwd.rasterize_fwd_pallas, width=width, height=height,
                                     tile_size=tile_size, interpret=interpret, backend=backend))


@functools.lru_cache(maxsize=None)
def _bwd(height, width, tile_size, interpret, backend):
    return jax.jit(functools.partial(pallas_bwd.rasterize_bwd_pallas, width=width, height=height,
                                     tile_size=tile_size, interpret=interpret, backend=backend))


_dense = jax.jit(functools.partial(reference.composite_ref, width=W, height=H))


@functools.lru_cache(maxsize=None)
def _fwd_ref(height, width, tile_size):
    return jax.jit(functools.partial(xla.rasterize_fwd_xla, width=width, height=height,
                                     tile_size=tile_size))


@functools.lru_cache(maxsize=None)
def _bwd_ref(height, width, tile_size):
    return jax.jit(functools.partial(xla.rasterize_bwd_xla, width=width, height=height,
                                     tile_size=tile_size))


def _build(kind: str, height=H, width=W, n=N, channels=D, tile_size=TS):
    """A scene of the named kind with its tile lists padded to CAPACITY entries."""
    if kind == "random":  # 3.33-sigma binning, equal-depth pairs, opacities 0 and 1
        scene, depths = make_scene(0, n, height, width, channels, equal_depth_pairs=3)
        everywhere = False
    elif kind == "crowded":  # every Gaussian in every tile (48 > chunk 32), faint: no early stop
        scene, depths = make_scene(1, n, height, width, channels, equal_depth_pairs=2)
        scene["opacities"] *= np.float32(0.12)
        everywhere = True
    elif kind == "opaque":  # long lists of near-opaque Gaussians: most pixels stop early
        scene, depths = make_scene(2, n, height, width, channels, extreme_opacities=False)
        scene["opacities"] = np.float32(0.85) + np.float32(0.15) * scene["opacities"]
        scene["conics"] *= np.float32(0.25)  # twice the extent
        everywhere = True
    else:
        raise ValueError(kind)
    gids, offsets = bin_scene(scene, depths, height, width, tile_size, everywhere=everywhere,
                              extra_padding=CAPACITY)
    assert offsets[-1] <= CAPACITY
    gids = gids[:CAPACITY]
    return scene, depths, gids, offsets


def _args(scene, gids, offsets):
    return tuple(jnp.asarray(scene[k]) for k in FIELDS) + (jnp.asarray(gids),
                                                           jnp.asarray(offsets))


def _cotangents(seed, height=H, width=W, channels=D):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.normal(size=(height, width, channels)), jnp.float32),
            jnp.asarray(rng.normal(size=(height, width)), jnp.float32))


def _assert_grads_close(got, want, rtol, what):
    """Elementwise, scaled by the largest reference entry of each gradient."""
    for name, g, w in zip(GRAD_NAMES, got, want):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        assert g.shape == w.shape, (name, g.shape, w.shape)
        scale = max(np.abs(w).max(), 1e-12)
        err = np.abs(g - w).max() / scale
        assert err <= rtol, f"{what} {name}: max |diff| / max |ref| = {err:.3g} > {rtol}"


SCENES = ("random", "crowded", "opaque")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", SCENES)
def test_forward_matches_reference(kind, mode):
    scene, _, gids, offsets = _build(kind)
    args = _args(scene, gids, offsets)
    out, t_final, n_contrib = _fwd(H, W, TS, *mode)(*args)
    out_r, t_r, n_r = _fwd_ref(H, W, TS)(*args)
    assert out.shape == (H, W, D) and t_final.shape == (H, W) and n_contrib.dtype == jnp.int32
    assert np.abs(np.asarray(out) - np.asarray(out_r)).max() <= 1e-5
    assert np.abs(np.asarray(t_final) - np.asarray(t_r)).max() <= 1e-5
    np.testing.assert_array_equal(np.asarray(n_contrib), np.asarray(n_r))


@pytest.mark.parametrize("kind", SCENES)
def test_forward_matches_numpy_loop(kind):
    scene, depths, gids, offsets = _build(kind)
    out, t_final, n_contrib = _fwd(H, W, TS, True, "triton")(*_args(scene, gids, offsets))
    out_np, t_np, last_np = numpy_composite_fwd(scene, depths, H, W)
    assert np.abs(np.asarray(out) - out_np).max() <= 1e-5
    assert np.abs(np.asarray(t_final) - t_np).max() <= 1e-5
    # n_contrib is tile-relative: map it back to the Gaussian id of the last contributor.
    n_contrib = np.asarray(n_contrib)
    ys, xs = np.mgrid[:H, :W]
    tile = (ys // TS) * -(-W // TS) + xs // TS
    last = np.where(n_contrib > 0, gids[np.maximum(offsets[tile] + n_contrib - 1, 0)], -1)
    np.testing.assert_array_equal(last, last_np)
    if kind == "opaque":
        assert (t_np <= 1e-3).mean() > 0.5, "scene should stop most pixels early"
    if kind == "crowded":
        assert (n_contrib > 32).any(), "some pixel should take entries past the first chunk"


@pytest.mark.parametrize("kind", SCENES)
def test_forward_matches_dense_composite(kind):
    """Against the renderer's dense oracle (every Gaussian at every pixel, no tiles)."""
    scene, depths, gids, offsets = _build(kind)
    out, t_final, _ = _fwd(H, W, TS, True, "triton")(*_args(scene, gids, offsets))
    out_d, alpha_d = _dense(*(jnp.asarray(scene[k]) for k in FIELDS[:4]),
                            jnp.asarray(depths, jnp.float32), jnp.ones((N,), bool),
                            jnp.asarray(scene["background"]))
    assert np.abs(np.asarray(out) - np.asarray(out_d)).max() <= 1e-5
    assert np.abs((1.0 - np.asarray(t_final)) - np.asarray(alpha_d)).max() <= 1e-5


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", SCENES)
def test_backward_matches_reference(kind, mode):
    scene, _, gids, offsets = _build(kind)
    args = _args(scene, gids, offsets)
    _, t_final, n_contrib = _fwd_ref(H, W, TS)(*args)
    v_out, v_alpha = _cotangents(SCENES.index(kind))
    got = _bwd(H, W, TS, *mode)(*args, t_final, n_contrib, v_out, v_alpha)
    want = _bwd_ref(H, W, TS)(*args, t_final, n_contrib, v_out, v_alpha)
    _assert_grads_close(got, want, 2e-5, f"pallas vs reference ({kind})")


def test_backward_matches_numpy_loop():
    scene, depths, gids, offsets = _build("random")
    args = _args(scene, gids, offsets)
    _, t_final, n_contrib = _fwd(H, W, TS, True, "triton")(*args)
    v_out, v_alpha = _cotangents(7)
    got = _bwd(H, W, TS, True, "triton")(*args, t_final, n_contrib, v_out, v_alpha)
    want = numpy_composite_bwd(scene, depths, H, W, np.asarray(v_out), np.asarray(v_alpha))
    _assert_grads_close(got, want, 2e-5, "pallas vs float64 loop")
    assert np.abs(np.asarray(got[2])).max() > 0 and np.abs(np.asarray(got[0])).max() > 0


@pytest.mark.parametrize("tile_size", [8, pytest.param(32, marks=pytest.mark.slow)])
def test_more_channels_and_other_tile_sizes(tile_size):
    """D = 5 (not a power of two) at 33 x 40, forward and backward."""
    h, w, d, ts = 33, 40, 5, tile_size
    v_out, v_alpha = _cotangents(3, h, w, d)
    scene, _, gids, offsets = _build("random", h, w, N, d, ts)
    args = _args(scene, gids, offsets)
    got_f = _fwd(h, w, ts, True, "triton")(*args)
    want_f = _fwd_ref(h, w, ts)(*args)
    assert np.abs(np.asarray(got_f[0]) - np.asarray(want_f[0])).max() <= 1e-5
    np.testing.assert_array_equal(np.asarray(got_f[2]), np.asarray(want_f[2]))
    got_b = _bwd(h, w, ts, True, "triton")(*args, want_f[1], want_f[2], v_out, v_alpha)
    want_b = _bwd_ref(h, w, ts)(*args, want_f[1], want_f[2], v_out, v_alpha)
    _assert_grads_close(got_b, want_b, 2e-5, f"{d} channels, tile {ts}")


@pytest.mark.parametrize("chunk_size", [1, 5])
def test_chunk_size_does_not_change_the_image(chunk_size):
    """The early-exit chunking is a schedule only: chunk 1 and 5 (not dividing 48) equal the
    reference on the scene whose lists are longer than the default chunk."""
    scene, _, gids, offsets = _build("crowded")
    args = _args(scene, gids, offsets)
    f = jax.jit(functools.partial(pallas_fwd.rasterize_fwd_pallas, width=W, height=H,
                                  tile_size=TS, interpret=True, chunk_size=chunk_size))
    out, t_final, n_contrib = f(*args)
    out_r, t_r, n_r = _fwd_ref(H, W, TS)(*args)
    assert np.abs(np.asarray(out) - np.asarray(out_r)).max() <= 1e-5
    np.testing.assert_array_equal(np.asarray(n_contrib), np.asarray(n_r))


def test_nested_vmap_equals_per_item_calls():
    """Two nested vmaps fold into the kernels' batch grid axis and change nothing.

    Inner axis: two scenes (all inputs batched). Outer axis: two backgrounds (forward) or two
    cotangents (backward), every other input shared (unbatched) along it.
    """
    items = []
    for kind in SCENES[:2]:
        scene, _, gids, offsets = _build(kind)
        items.append(_args(scene, gids, offsets))
    scenes = [jnp.stack(x) for x in zip(*items)]
    backgrounds = jnp.stack([scenes[4], 1.0 - scenes[4]])  # (outer, inner, D)
    cotangents = [_cotangents(13 + i) for i in range(2)]
    v_out = jnp.stack([c[0] for c in cotangents])
    v_alpha = jnp.stack([c[1] for c in cotangents])
    fwd, bwd = _fwd(H, W, TS, True, "triton"), _bwd(H, W, TS, True, "triton")

    got_f = jax.jit(jax.vmap(jax.vmap(fwd), in_axes=(None,) * 4 + (0, None, None)))(
        *scenes[:4], backgrounds, *scenes[5:])
    saved = [fwd(*item)[1:] for item in items]  # T_final, n_contrib of each scene
    inner_b = jax.vmap(bwd, in_axes=(0,) * 9 + (None,) * 2)
    got_b = jax.jit(jax.vmap(inner_b, in_axes=(None,) * 9 + (0, 0)))(
        *scenes, *(jnp.stack(x) for x in zip(*saved)), v_out, v_alpha)
    assert got_f[0].shape == (2, 2, H, W, D) and got_b[0].shape == (2, 2, N, 2)
    for i in range(2):
        for j, item in enumerate(items):
            want_f = fwd(*item[:4], backgrounds[i, j], *item[5:])
            for g, w in zip(got_f, want_f):
                np.testing.assert_allclose(np.asarray(g[i, j]), np.asarray(w), rtol=0, atol=1e-6)
            want_b = bwd(*item, *saved[j], v_out[i], v_alpha[i])
            _assert_grads_close([g[i, j] for g in got_b], want_b, 1e-6, f"vmap item {i},{j}")


@pytest.mark.parametrize("capacity", [CAPACITY, pytest.param(0, marks=pytest.mark.slow)])
def test_empty_tile_lists_give_background(capacity):
    """No tile has entries (all padding, or no list at all): background, zero gradients."""
    scene, _, _, _ = _build("random")
    offsets = np.zeros(-(-H // TS) * -(-W // TS) + 1, np.int32)
    gids = np.full((capacity,), N + 3, np.int32)
    args = _args(scene, gids, offsets)
    out, t_final, n_contrib = _fwd(H, W, TS, True, "triton")(*args)
    # bitwise: no entries composite 0 + 1 * background, no rounding
    np.testing.assert_array_equal(np.asarray(out), np.broadcast_to(scene["background"], out.shape))
    assert (np.asarray(t_final) == 1).all() and (np.asarray(n_contrib) == 0).all()
    v_out, v_alpha = _cotangents(5)
    grads = _bwd(H, W, TS, True, "triton")(*args, t_final, n_contrib, v_out, v_alpha)
    for g in grads[:4]:
        assert not np.asarray(g).any()
    np.testing.assert_allclose(np.asarray(grads[4]), np.asarray(v_out).sum((0, 1)), rtol=1e-5)


def test_custom_vjp_pallas_equals_xla():
    """Through ``api.rasterize`` (custom_vjp): images and all five gradients agree."""
    scene, _, gids, offsets = _build("random")
    args = _args(scene, gids, offsets)
    v_out, v_alpha = _cotangents(11)
    results = {}
    for impl in ("xla", "pallas"):
        @jax.jit
        def image_and_grads(*diff, impl=impl):
            def f(*diff):
                out, alpha, _ = api.rasterize(*diff, args[5], args[6], width=W, height=H,
                                              tile_size=TS, implementation=impl)
                return out, alpha
            (out, alpha), vjp = jax.vjp(f, *diff)
            return out, alpha, vjp((v_out, v_alpha))
        results[impl] = image_and_grads(*args[:5])
    (o_x, a_x, g_x), (o_p, a_p, g_p) = results["xla"], results["pallas"]
    assert np.abs(np.asarray(o_p) - np.asarray(o_x)).max() <= 1e-5
    assert np.abs(np.asarray(a_p) - np.asarray(a_x)).max() <= 1e-5
    _assert_grads_close(g_p, g_x, 2e-5, "custom_vjp pallas vs xla")


def _bad(**changes):
    scene, _, gids, offsets = _build("random")
    args = dict(zip(FIELDS, (jnp.asarray(scene[k]) for k in FIELDS)),
                isect_gids=jnp.asarray(gids), tile_offsets=jnp.asarray(offsets))
    args.update(changes)
    return args


@pytest.mark.parametrize("changes, message", [
    (dict(means2d=jnp.zeros((N, 3))), "means2d.shape="),
    (dict(conics=jnp.zeros((N - 1, 3))), "conics.shape="),
    (dict(opacities=jnp.zeros((N, 1))), "opacities.shape="),
    (dict(colors=jnp.zeros((N,))), "colors.shape="),
    (dict(background=jnp.zeros((D + 1,))), "background.shape="),
    (dict(isect_gids=jnp.zeros((4, 2), jnp.int32)), "isect_gids.shape="),
    (dict(tile_offsets=jnp.zeros((5,), jnp.int32)), "tile_offsets.shape="),
    (dict(tile_size=12), "tile_size="),
    (dict(width=0), "width="),
])
def test_bad_inputs_raise_before_any_kernel(changes, message, monkeypatch):
    def no_kernel(*a, **k):
        raise AssertionError("a kernel was built before the inputs were checked")
    monkeypatch.setattr(pallas_fwd.pl, "pallas_call", no_kernel)
    static = dict(width=W, height=H, tile_size=TS)
    static.update({k: changes.pop(k) for k in list(changes) if k in static})
    args = _bad(**changes)
    with pytest.raises(ValueError, match=message):
        pallas_fwd.rasterize_fwd_pallas(*args.values(), interpret=True, **static)
    t_final, n_contrib = jnp.ones((H, W)), jnp.zeros((H, W), jnp.int32)
    v_out, v_alpha = _cotangents(0)
    with pytest.raises(ValueError, match=message):
        pallas_bwd.rasterize_bwd_pallas(*args.values(), t_final, n_contrib, v_out, v_alpha,
                                        interpret=True, **static)


@pytest.mark.parametrize("changes, message", [
    (dict(T_final=jnp.ones((H, W + 1))), "T_final.shape="),
    (dict(n_contrib=jnp.zeros((H, W))), "n_contrib.dtype="),
    (dict(v_out=jnp.zeros((H, W))), "v_out.shape="),
    (dict(v_alpha=jnp.zeros((H, W, 1))), "v_alpha.shape="),
])
def test_bad_saved_values_raise_before_any_kernel(changes, message, monkeypatch):
    def no_kernel(*a, **k):
        raise AssertionError("a kernel was built before the inputs were checked")
    monkeypatch.setattr(pallas_bwd.pl, "pallas_call", no_kernel)
    saved = dict(T_final=jnp.ones((H, W)), n_contrib=jnp.zeros((H, W), jnp.int32),
                 v_out=jnp.zeros((H, W, D)), v_alpha=jnp.zeros((H, W)))
    saved.update(changes)
    with pytest.raises(ValueError, match=message):
        pallas_bwd.rasterize_bwd_pallas(*_bad().values(), *saved.values(), width=W, height=H,
                                        tile_size=TS, interpret=True)


def _abstract_args(batch=(), n=N, e=CAPACITY, d=D, height=H, width=W, tile_size=TS,
                   backward=False):
    s = lambda shape, dtype=jnp.float32: jax.ShapeDtypeStruct(batch + shape, dtype)
    n_tiles = -(-height // tile_size) * -(-width // tile_size)
    args = [s((n, 2)), s((n, 3)), s((n,)), s((n, d)), s((d,)), s((e,), jnp.int32),
            s((n_tiles + 1,), jnp.int32)]
    if backward:
        args += [s((height, width)), s((height, width), jnp.int32), s((height, width, d)),
                 s((height, width))]
    return args


_CUSTOM_CALL = {"triton": "__gpu$xla.gpu.triton", "mosaic_gpu": "mosaic_gpu"}


# jax 0.10.2 announces the move of Mosaic GPU kernels from pl.pallas_call to plgpu.kernel, which
# is not a generic primitive (no interpret mode); the kernels stay on pl.pallas_call.
@pytest.mark.filterwarnings("ignore:Using ``pl.pallas_call`` for Mosaic GPU:DeprecationWarning")
@pytest.mark.parametrize("vmapped", [False, True], ids=["single", "vmapped"])
@pytest.mark.parametrize("backend", ["triton", "mosaic_gpu"])
@pytest.mark.parametrize("direction", ["fwd", "bwd"])
def test_lowers_for_cuda(direction, backend, vmapped, monkeypatch):
    """Each kernel lowers to one CUDA custom call with each backend (jax.export, on this CPU),
    also under vmap (folded into the kernel's batch axis).

    Mosaic GPU verifies its MLIR module while lowering; Pallas-Triton does not (it serialises the
    module and compiles it to PTX only on a GPU), so the Triton module is verified here: the
    Triton op verifiers reject, for example, tensors whose size is not a power of two.
    """
    verified = []
    if backend == "triton":  # private hook of jax 0.10.2 (pinned), the only place the module is
        from jax._src.pallas.triton import pallas_call_registration as triton_registration
        lower = triton_registration.lowering.lower_jaxpr_to_triton_module

        def lower_and_verify(*a, **k):
            result = lower(*a, **k)
            verified.append(result.module.operation.verify())
            return result
        monkeypatch.setattr(triton_registration.lowering, "lower_jaxpr_to_triton_module",
                            lower_and_verify)
    fn = pallas_fwd.rasterize_fwd_pallas if direction == "fwd" else pallas_bwd.rasterize_bwd_pallas
    f = functools.partial(fn, width=W, height=H, tile_size=TS, interpret=False, backend=backend)
    f = jax.jit(jax.vmap(f) if vmapped else f)
    disabled = ([jax.export.DisabledSafetyCheck.custom_call(_CUSTOM_CALL["triton"])]
                if backend == "triton" else [])
    exported = jax.export.export(f, platforms=["cuda"], disabled_checks=disabled)(
        *_abstract_args(batch=(3,) if vmapped else (), backward=direction == "bwd"))
    text = exported.mlir_module()
    calls = [line for line in text.splitlines() if "stablehlo.custom_call" in line]
    kernel_calls = [c for c in calls if f"@{_CUSTOM_CALL[backend]}" in c]
    assert len(kernel_calls) == 1, calls
    if direction == "bwd":  # the gradient rows start as an aliased zeros buffer
        assert "output_operand_aliases" in kernel_calls[0]
    if backend == "triton":
        assert verified == [True]
    assert exported.platforms == ("cuda",)
