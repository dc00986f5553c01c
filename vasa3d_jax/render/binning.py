"""Static-capacity tile binning: which Gaussians touch which tile, in depth order.

gsplat 1.5.3 (``csrc/IntersectTile.cu``, ``reference/splatting.md`` section 1.3 item 7) bins each
visible Gaussian into the tiles its per-axis box [mu2d - r, mu2d + r] overlaps:

    (1) tile_min = clamp(floor((mu2d - r) / ts), 0, n_tx|n_ty),  tile_max = clamp(ceil((mu2d + r) / ts), 0, ...)
        count_g = (tile_max_x - tile_min_x) (tile_max_y - tile_min_y)            max exclusive
    (2) every (Gaussian, tile) pair is sorted by (tile id, depth), ties by ascending Gaussian id
        (gsplat: stable radix sort of pairs emitted in id order); tile id = ty n_tx + tx
    (3) tile_offsets[t] = first position of tile t in the sorted list (``isect_offset_encode``)

One addition: a pair whose Gaussian cannot reach any pixel of the tile is dropped from the lists
(it is still counted in ``num_isects``, the capacity the emission needs). Compositing skips a
Gaussian at a pixel where o exp(-sigma) < 1/255, i.e. sigma > ln(255 o); sigma is a convex
quadratic, so its minimum over the rectangle spanned by the tile's pixel centres (zero if the
centre mu2d lies inside, else the least of the four edge minima, each a clamped 1D vertex) decides
for every pixel at once. Pairs with min sigma > ln(255 o) plus a rounding margin are dropped, so
images and gradients are those of the full box lists; on the head benchmark scenes about a quarter
of the box pairs go, and with them a quarter of the compositing work.

How it runs. The (tile, depth) sort is a comparison sort on XLA:CPU (~50 ns per pair), so the box
pairs are emitted and sorted with tiles COARSEN x the compositing tile (2.6x fewer pairs on the
head scenes), and each sorted coarse list is then filtered by the ellipse test into the lists of
its COARSEN^2 fine tiles; filtering keeps the depth order, so the fine lists need no second sort,
and they are exactly the ellipse-tested fine box pairs (plus, at most, pairs within the rounding
margin of the test, which composite to nothing). The split is one fused test whose four bits are
packed into one float, a running count by triangular matmuls (``_prefix_count``) and one scatter
per sub-tile. Two XLA:CPU habits shape the code: a loop fusion that gathers from a derived table
recomputes the table per element unless it is materialised (``_materialize``), and a value used
by two consumers is computed twice unless it ends in a reduction; per-Gaussian quantities
(``ellipse_table``) are computed once and gathered in depth-rank order, so each list reads them
in ascending order.

gsplat sizes its buffers dynamically; here the coarse list has a static capacity E (the fine lists
get COARSEN^2 E slots). The pairs are emitted in (depth, id) rank order, so when the scene needs
more than E coarse pairs the farthest pairs are the ones dropped, and ``isect_overflow`` = needed -
E says by how much (never silent). Per-tile counts come from a 2D difference array of the fine
boxes (one scatter of box corners + two cumulative sums), so they and ``max_tile_count`` are exact
even when the list overflows.

The sort key packs (coarse tile, depth rank) into one int32, tile * N + rank, which needs
(n_tiles + 1) N < 2^31; larger problems fall back to a two-key ``lax.sort`` (same order). The depth
rank itself comes from ``depth_order``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TileBins:
    """Sorted (Gaussian, tile) pairs for one image.

    isect_gids:     (COARSEN^2 E,) int32, Gaussian ids sorted by (tile, depth, id); entries >= tile_offsets[-1] are padding
    tile_offsets:   (n_tiles + 1,) int32, tile t's list is isect_gids[tile_offsets[t]:tile_offsets[t+1]]
    tile_counts:    (n_tiles,) int32, exact box pairs per tile (before the ellipse test and any truncation)
    num_isects:     () int32, coarse pairs the scene needs (the capacity E it needs)
    isect_overflow: () int32, coarse pairs dropped because E was too small
    max_tile_count: () int32, most box pairs in one tile
    """

    isect_gids: jax.Array
    tile_offsets: jax.Array
    tile_counts: jax.Array
    num_isects: jax.Array
    isect_overflow: jax.Array
    max_tile_count: jax.Array


COARSEN = 2  # pairs are emitted and sorted with tiles COARSEN x the compositing tile, then split


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
    """(N,) int32 pairs each Gaussian emits for compositing tiles of ``tile_size``: the tiles of
    COARSEN x ``tile_size`` its box touches (0 where culled); their sum is the capacity needed."""
    x0, x1, y0, y1 = tile_boxes(means2d, radii, width=width, height=height, tile_size=COARSEN * tile_size)
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


_CULLED_KEY = 0x7F800001  # first int32 above the bits of +inf: culled Gaussians sort after all others


def depth_order(depths: jax.Array, visible: jax.Array) -> jax.Array:
    """(N,) int32 Gaussian ids sorted by (depth, id), visible ones first (equation 2's depth rank).

    A positive float's bits order like the float, and XLA:CPU sorts one int32 array about six
    times faster than a (key, index) pair, so this sorts the bits alone and places each id by a
    binary search; equal depths (common with 1e5 Gaussians in float32) are then ranked by id, one
    round per member of the largest group of equal depths.
    """
    n = depths.shape[0]
    bits = jax.lax.bitcast_convert_type(jnp.maximum(jax.lax.stop_gradient(depths), 0.0).astype(jnp.float32), jnp.int32)
    ids = jnp.arange(n, dtype=jnp.int32)
    if n >= 2**31 - _CULLED_KEY:
        return jnp.argsort(jnp.where(visible, bits, jnp.iinfo(jnp.int32).max), stable=True).astype(jnp.int32)
    key = jnp.where(visible, bits, _CULLED_KEY + ids)  # culled: distinct keys above every depth
    first = jnp.searchsorted(jnp.sort(key), key).astype(jnp.int32)  # first rank of each key

    def place_smallest(state):  # the smallest unplaced id of each group takes its next rank
        rank, todo, j = state
        smallest = jnp.full((n,), n, jnp.int32).at[first].min(jnp.where(todo, ids, n))
        win = todo & (smallest[first] == ids)
        return jnp.where(win, first + j, rank), todo & ~win, j + 1

    rank, _, _ = jax.lax.while_loop(lambda s: jnp.any(s[1]), place_smallest, (first, jnp.ones((n,), bool), 0))
    return jnp.zeros((n,), jnp.int32).at[rank].set(ids, unique_indices=True)


def ellipse_table(means2d: jax.Array, conics: jax.Array, opacities: jax.Array) -> jax.Array:
    """(N, 8) float32 rows for ``_reaches``: mu_x, mu_y, a, b, c, b / a, b / c and the threshold
    ln(255 o) + 1e-3 (rows of Gaussians that are never binned may hold inf or nan)."""
    m, cn, o = (jax.lax.stop_gradient(x).astype(jnp.float32) for x in (means2d, conics, opacities))
    a, b, c = cn[:, 0], cn[:, 1], cn[:, 2]
    return jnp.stack([m[:, 0], m[:, 1], a, b, c, b / a, b / c, jnp.log(255.0 * o) + 1e-3], axis=1)


def _reaches(rows, tx, ty, tile_size):
    """Whether a Gaussian can reach alpha >= 1/255 at some pixel centre of tile (tx, ty).

    rows (..., 8) from ``ellipse_table``; tx, ty int32, broadcasting against rows[..., 0].
    Conservative: the rectangle of pixel centres contains every centre, and an edge passes when
    its minimum, less 1e-4 of its terms' magnitude (float32 rounding), is at most the threshold
    (which carries a 1e-3 margin).
    """
    mx, my, a, b, c, ba, bc, thr = (rows[..., k] for k in range(8))
    x0 = (tx * tile_size).astype(rows.dtype) + 0.5
    y0 = (ty * tile_size).astype(rows.dtype) + 0.5
    lo_x, hi_x = mx - (x0 + (tile_size - 1)), mx - x0  # d = mu2d - p over the rectangle of centres
    lo_y, hi_y = my - (y0 + (tile_size - 1)), my - y0

    def passes(dx, dy):
        q, r = 0.5 * (a * dx * dx + c * dy * dy), b * dx * dy
        return q + r - 1e-4 * (q + jnp.abs(r)) <= thr

    ok = (lo_x <= 0) & (hi_x >= 0) & (lo_y <= 0) & (hi_y >= 0)
    for dx in (lo_x, hi_x):  # vertical edges: d sigma / d dy = b dx + c dy = 0
        ok = ok | passes(dx, jnp.clip(-bc * dx, lo_y, hi_y))
    for dy in (lo_y, hi_y):  # horizontal edges: a dx + b dy = 0
        ok = ok | passes(jnp.clip(-ba * dy, lo_x, hi_x), dy)
    return ok


def _materialize(x):
    """Identity that XLA:CPU computes once into a buffer. A loop fusion that gathers from a small
    derived table otherwise recomputes the table's whole producer chain per element (measured 17x
    slower); ``optimization_barrier`` does not stop that on CPU, a scatter does."""
    return jnp.zeros_like(x).at[jnp.arange(x.shape[0])].set(x, unique_indices=True, indices_are_sorted=True)


_BLOCK = 32  # entries per block of the prefix count


def _upper_ones():
    """(_BLOCK, _BLOCK) float32, 1 where row <= column: x @ it is the inclusive running sum of x's rows."""
    return jnp.triu(jnp.ones((_BLOCK, _BLOCK), jnp.float32))


def _prefix_count(packed):
    """Running counts of four keep bits packed in 6-bit lanes of a (M,) float32 (M a multiple of _BLOCK).

    Returns keep (M, 4) bool and the inclusive running counts (M, 4) int32. XLA:CPU runs a dot at
    GFLOP/s while ``associative_scan`` is dozens of small ops, so each block of _BLOCK entries is
    counted by one triangular matmul (a block's lane count <= _BLOCK < 64 and the whole < 2^24: exact
    in float32) and the block totals by ``_exclusive_rows``.
    """
    m = packed.shape[0]
    inner = (packed.reshape(m // _BLOCK, _BLOCK) @ _upper_ones()).astype(jnp.int32)
    lanes = lambda x: jnp.stack([(x >> (6 * s)) & 63 for s in range(4)], axis=-1)
    run = lanes(inner)  # (blocks, _BLOCK, 4)
    run = run + _materialize(_exclusive_rows(run[:, -1, :]))[:, None, :]
    return lanes(packed.astype(jnp.int32)) > 0, run.reshape(m, 4)


def _exclusive_rows(x):
    """(R, 4) int32 exclusive running sums over rows (blocked triangular matmuls while exact in float32)."""
    r = x.shape[0]
    if r <= 1:
        return jnp.zeros_like(x)
    if r >= 2**24 // _BLOCK:  # float32 no longer exact: plain scan
        return jax.lax.associative_scan(jnp.add, x, axis=0) - x
    pad = -r % _BLOCK
    xb = jnp.pad(x, ((0, pad), (0, 0))).reshape(-1, _BLOCK, 4)
    inner = jnp.einsum("rbs,bc->rcs", xb.astype(jnp.float32), _upper_ones()).astype(jnp.int32)  # inclusive
    out = inner - xb + _exclusive_rows(inner[:, -1, :])[:, None, :]
    return out.reshape(-1, 4)[:r]


def bin_gaussians(
    means2d: jax.Array,
    radii: jax.Array,
    depths: jax.Array,
    conics: jax.Array,
    opacities: jax.Array,
    *,
    width: int,
    height: int,
    tile_size: int,
    capacity: int,
) -> TileBins:
    """Equations (1)-(3) with a static capacity of ``capacity`` coarse pairs (``count_isects``).

    means2d (N, 2), radii (N, 2) int32, depths (N,), conics (N, 3), opacities (N,) (as
    composited). Returns ``TileBins``.
    """
    if capacity < 1:
        raise ValueError(f"{capacity=} must be >= 1 (see vasa3d_jax.render.required_capacity)")
    n = means2d.shape[0]
    n_tx, n_ty = tile_grid(width, height, tile_size)
    n_tiles = n_tx * n_ty
    coarse = COARSEN * tile_size
    c_tx, c_ty = tile_grid(width, height, coarse)
    c_tiles = c_tx * c_ty
    x0, x1, y0, y1 = tile_boxes(means2d, radii, width=width, height=height, tile_size=coarse)
    counts = (x1 - x0) * (y1 - y0)  # = count_isects

    # (a) Box pairs with the coarse tiles, in (tile, depth, id) order.
    order = depth_order(depths, counts > 0)
    counts_r = counts[order]
    cum = jnp.cumsum(counts_r)
    total = cum[-1]
    first = cum - counts_r
    # Slot -> rank of the Gaussian that emits it: mark each Gaussian's first slot with its rank and
    # take a running max (a binary search per slot costs log N gathers per slot).
    ranks = jnp.arange(n, dtype=jnp.int32)
    marks = jnp.zeros((capacity,), jnp.int32).at[jnp.where(counts_r > 0, first, capacity)].max(ranks, mode="drop")
    rank = jax.lax.associative_scan(jnp.maximum, marks)
    slot = jnp.arange(capacity, dtype=jnp.int32)
    # Per Gaussian (in rank order): first slot, x0, box width, y0, and the width's reciprocal.
    # Materialised, else XLA re-derives the tables inside the per-slot gathers.
    w = jnp.maximum(x1 - x0, 1)[order]
    table = jnp.stack([first, x0[order], w, y0[order]], axis=1)
    box = _materialize(table)[rank]
    inv_w = _materialize(1.0 / w.astype(jnp.float32))[rank]
    local = slot - box[:, 0]
    row = jnp.floor((local.astype(jnp.float32) + 0.5) * inv_w).astype(jnp.int32)  # local // w: exact while local < 2^22
    tile = (box[:, 3] + row) * c_tx + box[:, 1] + local - row * box[:, 2]
    tile = jnp.where(slot < total, tile, c_tiles)  # padding sorts after every real tile
    if (c_tiles + 1) * n < 2**31:
        key = jnp.sort(tile * n + jnp.where(slot < total, rank, 0))
        coarse_tile, sorted_rank = key // n, key % n
    else:
        coarse_tile, sorted_rank = jax.lax.sort((tile, jnp.where(slot < total, rank, 0)), num_keys=2)
    gids = order[sorted_rank]
    coarse_offsets = jnp.searchsorted(coarse_tile, jnp.arange(c_tiles + 1, dtype=jnp.int32), side="left")

    # (b) Each coarse list, filtered by the ellipse test, gives the lists of its 2 x 2 fine tiles;
    # filtering keeps the depth order, so the fine lists need no second sort.
    rows = _materialize(ellipse_table(means2d, conics, opacities)[order])[sorted_rank]  # ranks ascend in a list
    ctile = jnp.minimum(coarse_tile, c_tiles - 1)
    sub = jnp.arange(COARSEN * COARSEN, dtype=jnp.int32)
    fx = (ctile % c_tx)[:, None] * COARSEN + sub % COARSEN  # (E, 4) fine tile of each sub-tile
    fy = (ctile // c_tx)[:, None] * COARSEN + sub // COARSEN
    keep = (coarse_tile < c_tiles)[:, None] & (fx < n_tx) & (fy < n_ty)
    keep = keep & _reaches(rows[:, None, :], fx, fy, tile_size)
    # The four keep bits packed into one float by a reduction, which XLA materialises once instead
    # of fusing the ellipse test into each consumer; then kept-so-far counts per sub-tile.
    packed = jnp.sum(jnp.where(keep, jnp.asarray([1.0, 64.0, 4096.0, 262144.0], jnp.float32), 0.0), axis=1)
    keep, run = _prefix_count(jnp.pad(packed, (0, -capacity % _BLOCK)))
    keep, run = keep[:capacity], run[:capacity]
    before = jnp.concatenate([jnp.zeros((1, 4), jnp.int32), run])[coarse_offsets]  # (c_tiles + 1, 4) kept before
    per_fine = (before[1:] - before[:-1]).reshape(c_ty, c_tx, COARSEN, COARSEN)
    per_fine = per_fine.transpose(0, 2, 1, 3).reshape(c_ty * COARSEN, c_tx * COARSEN)[:n_ty, :n_tx]
    offsets = jnp.concatenate([jnp.zeros((1,), jnp.int32), jnp.cumsum(per_fine.reshape(-1))])
    c = jnp.arange(c_tiles, dtype=jnp.int32)[:, None]
    fine = ((c // c_tx) * COARSEN + sub // COARSEN) * n_tx + (c % c_tx) * COARSEN + sub % COARSEN
    fine = jnp.minimum(fine, n_tiles - 1)
    shift = _materialize(offsets[fine] - before[:-1] - 1)  # (c_tiles, 4): list position = shift + run
    fine_gids = jnp.zeros((COARSEN * COARSEN * capacity,), jnp.int32)
    for s in range(COARSEN * COARSEN):  # one scatter per sub-tile: plain (E,) index vectors
        target = jnp.where(keep[:, s], shift[ctile, s] + run[:, s], COARSEN * COARSEN * capacity)
        fine_gids = fine_gids.at[target].set(gids, mode="drop", unique_indices=True)
    per_tile = tile_counts(means2d, radii, width=width, height=height, tile_size=tile_size)
    return TileBins(
        isect_gids=fine_gids,
        tile_offsets=offsets.astype(jnp.int32),
        tile_counts=per_tile,
        num_isects=total.astype(jnp.int32),
        isect_overflow=jnp.maximum(total - capacity, 0).astype(jnp.int32),
        max_tile_count=jnp.max(per_tile).astype(jnp.int32),
    )
