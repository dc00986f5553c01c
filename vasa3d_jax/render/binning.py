"""Static-capacity tile binning: which Gaussians touch which 16x16 tile, in depth order.

gsplat 1.5.3 (``csrc/IntersectTile.cu``, ``reference/splatting.md`` section 1.3 item 7) bins each
visible Gaussian into the tiles its per-axis box [mu2d - r, mu2d + r] overlaps:

    (1) tile_min = clamp(floor((mu2d - r) / ts), 0, n_tx|n_ty),  tile_max = clamp(ceil((mu2d + r) / ts), 0, ...)
        count_g = (tile_max_x - tile_min_x) (tile_max_y - tile_min_y)            max exclusive
    (2) every (Gaussian, tile) pair is sorted by (tile id, depth), ties by ascending Gaussian id
        (gsplat: stable radix sort of pairs emitted in id order); tile id = ty n_tx + tx
    (3) tile_offsets[t] = first position of tile t in the sorted list (``isect_offset_encode``)

gsplat sizes its buffers dynamically; here the list has a static capacity E. The pairs are emitted
in (depth, id) rank order, so when the scene needs more than E pairs the farthest pairs are the ones
dropped, and ``isect_overflow`` = needed - E says by how much (never silent). Per-tile counts come
from a 2D difference array (one scatter of box corners + two cumulative sums), so they and
``max_tile_count`` are exact even when the list overflows.

The sort key packs (tile, depth rank) into one int32, tile * N + rank, which needs
(n_tiles + 1) N < 2^31; larger problems fall back to a two-key ``lax.sort`` (same order).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TileBins:
    """Sorted (Gaussian, tile) pairs for one image.

    isect_gids:     (E,) int32, Gaussian ids sorted by (tile, depth, id); entries >= tile_offsets[-1] are padding
    tile_offsets:   (n_tiles + 1,) int32, tile t's list is isect_gids[tile_offsets[t]:tile_offsets[t+1]]
    tile_counts:    (n_tiles,) int32, exact pairs per tile (before any truncation)
    num_isects:     () int32, pairs the scene needs
    isect_overflow: () int32, pairs dropped because E was too small
    max_tile_count: () int32, most pairs in one tile
    """

    isect_gids: jax.Array
    tile_offsets: jax.Array
    tile_counts: jax.Array
    num_isects: jax.Array
    isect_overflow: jax.Array
    max_tile_count: jax.Array


def tile_grid(width: int, height: int, tile_size: int) -> tuple[int, int]:
    """(tiles across, tiles down) = (ceil(W / ts), ceil(H / ts))."""
    return -(-width // tile_size), -(-height // tile_size)


def tile_boxes(means2d: jax.Array, radii: jax.Array, *, width: int, height: int, tile_size: int):
    """Equation (1): per-Gaussian tile box (x0, x1, y0, y1), max exclusive, empty where culled.

    means2d (N, 2) pixels; radii (N, 2) int32 (0 = culled). Returns four (N,) int32 arrays.
    """
    n_tx, n_ty = tile_grid(width, height, tile_size)
    m = jax.lax.stop_gradient(means2d)
    r = radii.astype(m.dtype)
    vis = jnp.any(radii > 0, axis=-1)
    x0 = jnp.clip(jnp.floor((m[:, 0] - r[:, 0]) / tile_size), 0, n_tx)
    x1 = jnp.clip(jnp.ceil((m[:, 0] + r[:, 0]) / tile_size), 0, n_tx)
    y0 = jnp.clip(jnp.floor((m[:, 1] - r[:, 1]) / tile_size), 0, n_ty)
    y1 = jnp.clip(jnp.ceil((m[:, 1] + r[:, 1]) / tile_size), 0, n_ty)
    x0, x1, y0, y1 = (v.astype(jnp.int32) for v in (x0, x1, y0, y1))
    x1 = jnp.where(vis, x1, x0)
    y1 = jnp.where(vis, y1, y0)
    return x0, x1, y0, y1


def count_isects(means2d: jax.Array, radii: jax.Array, *, width: int, height: int, tile_size: int) -> jax.Array:
    """(N,) int32 tiles touched by each Gaussian (0 where culled)."""
    x0, x1, y0, y1 = tile_boxes(means2d, radii, width=width, height=height, tile_size=tile_size)
    return (x1 - x0) * (y1 - y0)


def tile_counts(means2d: jax.Array, radii: jax.Array, *, width: int, height: int, tile_size: int) -> jax.Array:
    """(n_tiles,) int32 exact pairs per tile, from a 2D difference array of the boxes."""
    n_tx, n_ty = tile_grid(width, height, tile_size)
    x0, x1, y0, y1 = tile_boxes(means2d, radii, width=width, height=height, tile_size=tile_size)
    nonempty = ((x1 > x0) & (y1 > y0)).astype(jnp.int32)
    diff = jnp.zeros((n_ty + 1, n_tx + 1), jnp.int32)
    diff = diff.at[y0, x0].add(nonempty).at[y0, x1].add(-nonempty)
    diff = diff.at[y1, x0].add(-nonempty).at[y1, x1].add(nonempty)
    counts = jnp.cumsum(jnp.cumsum(diff, axis=0), axis=1)
    return counts[:n_ty, :n_tx].reshape(-1)


def bin_gaussians(
    means2d: jax.Array,
    radii: jax.Array,
    depths: jax.Array,
    *,
    width: int,
    height: int,
    tile_size: int,
    capacity: int,
) -> TileBins:
    """Equations (1)-(3) with a static capacity of ``capacity`` pairs.

    means2d (N, 2), radii (N, 2) int32, depths (N,). Returns ``TileBins``.
    """
    if capacity < 1:
        raise ValueError(f"{capacity=} must be >= 1 (see vasa3d_jax.render.required_capacity)")
    n = means2d.shape[0]
    n_tx, n_ty = tile_grid(width, height, tile_size)
    n_tiles = n_tx * n_ty
    x0, x1, y0, y1 = tile_boxes(means2d, radii, width=width, height=height, tile_size=tile_size)
    counts = (x1 - x0) * (y1 - y0)
    per_tile = tile_counts(means2d, radii, width=width, height=height, tile_size=tile_size)

    # Depth rank with ties by id: a stable sort of (depth, id). Culled Gaussians emit no pairs.
    order = jnp.argsort(jax.lax.stop_gradient(depths), stable=True).astype(jnp.int32)
    counts_r = counts[order]
    cum = jnp.cumsum(counts_r)
    total = cum[-1]
    slot = jnp.arange(capacity, dtype=jnp.int32)
    rank = jnp.minimum(jnp.searchsorted(cum, slot, side="right").astype(jnp.int32), n - 1)
    valid = slot < total
    local = slot - (cum[rank] - counts_r[rank])
    g = order[rank]
    w = jnp.maximum(x1[g] - x0[g], 1)
    tile = (y0[g] + local // w) * n_tx + x0[g] + local % w
    tile = jnp.where(valid, tile, n_tiles)  # padding sorts after every real tile

    if (n_tiles + 1) * n < 2**31:
        key = jnp.sort(tile * n + jnp.where(valid, rank, 0))
        sorted_tile = key // n
        gids = order[key % n]
    else:
        sorted_tile, sorted_rank = jax.lax.sort((tile, jnp.where(valid, rank, 0)), num_keys=2)
        gids = order[sorted_rank]
    offsets = jnp.searchsorted(sorted_tile, jnp.arange(n_tiles + 1, dtype=jnp.int32), side="left")
    return TileBins(
        isect_gids=gids.astype(jnp.int32),
        tile_offsets=offsets.astype(jnp.int32),
        tile_counts=per_tile,
        num_isects=total.astype(jnp.int32),
        isect_overflow=jnp.maximum(total - capacity, 0).astype(jnp.int32),
        max_tile_count=jnp.max(per_tile).astype(jnp.int32),
    )
