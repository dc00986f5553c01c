"""Tile binning: the depth order (ties by id) and the ellipse test that drops pairs which cannot
reach their tile, against brute force in float64."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.render import binning

W, H, TS = 70, 45, 8


@pytest.mark.parametrize("quantum", [0.0, 1e-3, 0.25])
def test_depth_order_is_depth_then_id(quantum):
    """(depth, id) order with visible first and culled by id, with no ties, some, and most equal."""
    n = 3000
    rng = np.random.default_rng(0)
    d = rng.uniform(0.5, 0.7, n).astype(np.float32)
    if quantum:
        d = (np.round(d / quantum) * quantum).astype(np.float32)
    visible = rng.uniform(size=n) > 0.1
    want = np.lexsort((np.arange(n), np.where(visible, d, np.inf), ~visible))
    got = np.asarray(jax.jit(binning.depth_order)(jnp.asarray(d), jnp.asarray(visible)))
    np.testing.assert_array_equal(got, want)


def _scene(seed, n=300):
    """Thin, rotated, partly faint splats: the box of the ellipse is mostly empty."""
    rng = np.random.default_rng(seed)
    means2d = np.stack([rng.uniform(-5, W + 5, n), rng.uniform(-5, H + 5, n)], 1)
    ang = rng.uniform(0, np.pi, n)
    s1, s2 = rng.uniform(0.5, 12.0, n), rng.uniform(0.3, 2.0, n)
    cs, sn = np.cos(ang), np.sin(ang)
    cxx, cyy, cxy = cs**2 * s1**2 + sn**2 * s2**2 + 0.3, sn**2 * s1**2 + cs**2 * s2**2 + 0.3, cs * sn * (s1**2 - s2**2)
    det = cxx * cyy - cxy**2
    conics = np.stack([cyy / det, -cxy / det, cxx / det], 1)
    opacities = rng.uniform(0.005, 1.0, n)
    extend = np.minimum(3.33, np.sqrt(2 * np.log(np.maximum(opacities * 255, 1.0))))
    radii = np.ceil(extend[:, None] * np.sqrt(np.stack([cxx, cyy], 1))).astype(np.int32)
    radii[opacities < 1 / 255] = 0
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    return f32(means2d), f32(conics), f32(opacities), jnp.asarray(radii), f32(rng.uniform(1, 2, n))


@pytest.mark.parametrize("seed", [0, 1])
def test_dropped_pairs_cannot_reach_their_tile(seed):
    """Every box pair left out of the lists has o exp(-sigma) < 1/255 at every pixel centre of its
    tile (float64), every kept pair is in its box, a good share of pairs is dropped, and
    ``num_isects`` counts the pairs emitted with the coarse tiles (what ``capacity`` must hold)."""
    means2d, conics, opac, radii, depths = _scene(seed)
    bins = jax.jit(binning.bin_gaussians, static_argnames=("width", "height", "tile_size", "capacity"))(
        means2d, radii, depths, conics, opac, width=W, height=H, tile_size=TS, capacity=20000)
    assert int(bins.isect_overflow) == 0
    offsets, gids = np.asarray(bins.tile_offsets), np.asarray(bins.isect_gids)
    kept = {(t, int(g)) for t in range(len(offsets) - 1) for g in gids[offsets[t]:offsets[t + 1]]}
    x0, x1, y0, y1 = (np.asarray(v) for v in binning.tile_boxes(means2d, radii, width=W, height=H, tile_size=TS))
    n_tx = -(-W // TS)
    box = {(ty * n_tx + tx, g) for g in range(len(x0)) for ty in range(y0[g], y1[g]) for tx in range(x0[g], x1[g])}
    assert kept <= box
    assert int(bins.num_isects) == int(binning.count_isects(means2d, radii, width=W, height=H, tile_size=TS).sum())
    c0, c1, d0, d1 = (np.asarray(v) for v in binning.tile_boxes(means2d, radii, width=W, height=H,
                                                                 tile_size=binning.COARSEN * TS))
    assert int(bins.num_isects) == int(((c1 - c0) * (d1 - d0)).sum())
    m, c, o = (np.asarray(v, np.float64) for v in (means2d, conics, opac))
    px, py = np.meshgrid(np.arange(TS) + 0.5, np.arange(TS) + 0.5)
    for t, g in box - kept:
        dx = m[g, 0] - (t % n_tx * TS + px)
        dy = m[g, 1] - (t // n_tx * TS + py)
        sigma = 0.5 * (c[g, 0] * dx * dx + c[g, 2] * dy * dy) + c[g, 1] * dx * dy
        assert (o[g] * np.exp(-sigma)).max() < 1 / 255, (t, g)
    assert len(box - kept) > 0.2 * len(box)


@pytest.mark.parametrize("m,p", [(32, 0.5), (40_000, 0.3), (70_016, 0.97)])
def test_prefix_count_equals_cumsum(m, p):
    """The packed-lane, triangular-matmul running count equals numpy's cumsum (recursion included)."""
    keep = np.random.default_rng(m).uniform(size=(m, 4)) < p
    packed = jnp.asarray(keep @ np.array([1.0, 64.0, 4096.0, 262144.0]), jnp.float32)
    got_keep, run = jax.jit(binning._prefix_count)(packed)
    np.testing.assert_array_equal(np.asarray(got_keep), keep)
    np.testing.assert_array_equal(np.asarray(run), np.cumsum(keep, axis=0))
