"""Tile compositing of splatted Gaussians, forward and hand-written backward, in pure JAX.

This is the fast XLA path of the compositing stage (the default on every platform; tuned schedule:
windows of tiles, rounds of entries). Its obviously correct reference is ``reference.py`` (dense
compositing: every Gaussian at every pixel). The Pallas kernels
(``pallas_fwd.py`` / ``pallas_bwd.py``) implement the same contract:

    rasterize_fwd_xla(means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
                      *, width, height, tile_size, config=None) -> (out, T_final, n_contrib)
    rasterize_bwd_xla(means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
                      T_final, n_contrib, v_out, v_alpha, *, width, height, tile_size, config=None)
        -> (v_means2d, v_conics, v_opacities, v_colors, v_background)

    means2d (N, 2) pixels; conics (N, 3) = (a, b, c) of the inverse blurred 2D covariance;
    opacities (N,) (already times compensation in antialiased mode); colors (N, D), any D;
    background (D,); isect_gids (E,) int32 Gaussian ids sorted by (tile, depth, id);
    tile_offsets (n_tiles + 1,) int32: tile t's list is isect_gids[tile_offsets[t]:tile_offsets[t+1]],
    tiles row-major, n_tiles = ceil(H / ts) ceil(W / ts); entries >= tile_offsets[-1] are padding.
    out (H, W, D) = C + T bg; T_final (H, W); n_contrib (H, W) int32 = entries of the pixel's tile
    list consumed up to and including the last contributing Gaussian (gsplat's last_id + 1 relative
    to the tile start; 0 if none). v_out (H, W, D), v_alpha (H, W): cotangents of out and of
    alpha = 1 - T_final. ``config`` (a ``SplatConfig``) only tunes the XLA path's scheduling.
    Both functions take any leading batch dimensions on every argument (and under ``jax.vmap`` they
    batch the same way): the images of a batch are composited together as one set of tiles.

Forward (gsplat 1.5.3 ``RasterizeToPixels3DGSFwd.cu``; ``reference/splatting.md`` 1.3 item 8), per
pixel p at (j + 0.5, i + 0.5), over its tile list front to back:

    (1) d = mu2d_i - p,  sigma_i = 0.5 (a d_x^2 + c d_y^2) + b d_x d_y
    (2) alpha_i = min(0.999, o_i exp(-sigma_i));  skip i if sigma_i < 0 or alpha_i < 1/255
    (3) if T (1 - alpha_i) <= 1e-4: stop, i excluded;  else C += c_i alpha_i T,  T *= 1 - alpha_i
    (4) out = C + T bg,  alpha = 1 - T

Backward (gsplat 1.5.3 ``RasterizeToPixels3DGSBwd.cu``; 1.3 item 9), back to front from T_final
over the contributing entries (index < n_contrib, not skipped), with T_i the transmittance in
front of i and S_i = sum_{j > i} c_j alpha_j T_j the colour behind it:

    (5) dL/dc_i = alpha_i T_i v_out
    (6) dL/dalpha_i = T_i c_i.v_out - (S_i.v_out + T_final bg.v_out) / (1 - alpha_i) + T_final v_alpha / (1 - alpha_i)
    (7) only where o_i exp(-sigma_i) <= 0.999 (the clamp of (2) inactive), with g = -o_i exp(-sigma_i) dL/dalpha_i:
        dL/dconic_i = (0.5 g d_x^2, g d_x d_y, 0.5 g d_y^2),  dL/dmu2d_i = g (a d_x + b d_y, b d_x + c d_y),
        dL/do_i = exp(-sigma_i) dL/dalpha_i
    (8) dL/dbg = sum_p T_final v_out

How the XLA path runs it. XLA:CPU runs a fused elementwise loop at a few ns per element, and the
work that matters is the (pixel, entry) pairs a tile visits before all its pixels have stopped, so
the schedule is "one list entry per step for every tile in a window of busy tiles":

- A window of ``config.window`` slots (fewer for small images, see ``_window``) holds tiles; the
  state of a slot is per pixel: T (slots, ts^2) and colour (slots, D / 2, ts^2), pixels minor. A
  stopped pixel keeps -T, so one array carries both the transmittance and the stop flag. XLA:CPU
  materialises exp(-sigma) once per entry (an expensive op with several users) and fuses the
  rest of (2)-(3) of an iteration's ``config.unroll`` entries into the colour update, which
  re-evaluates that cheap chain for every element it writes. Two things keep that chain short:
  the skip of sigma < 0 is a select before the exp (sigma -> inf, exp -> 0), so consumers read
  only the exp's buffer instead of recomputing sigma for the test (25% faster forwards, ~15%
  backwards, same bits); and colour channels travel in pairs, as the two parts of one complex
  element (20-25% faster forwards, same bits). Forcing the
  weights into buffers instead (a row scatter per entry; ``optimization_barrier`` is removed
  before fusion on CPU and changes nothing) costs more passes than the re-evaluation.
- Each step reads the next entry of every slot's list (a gather of a packed (N, 6 + D) Gaussian
  table), applies (1)-(3) to all their pixels and advances; ``config.unroll`` entries per loop
  iteration, ``config.steps`` per round. The forward gathers an iteration's entries and takes
  their exp at once (fewer, larger ops: XLA:CPU pays microseconds per op); the backward, whose
  body is longer, does not gain from it.
- After a round, slots whose tile has stopped at every pixel or exhausted its list store their
  results and take the next tiles of a queue ordered longest list first, so the window stays full
  and the work is the entries each tile needs, rounded up to a round, plus a short drain at the end.
- The backward walks each tile from its last contributing entry down to 0 with the same slots,
  recovering T_i = T_{i+1} / (1 - alpha_i) and S_i as running per-pixel state (as gsplat). Its
  loop keeps each entry's per-pixel v_sigma = dL/dsigma and weight w; after a round, two matrix
  products sum them over the tile's pixels (the moments of v_sigma against a quadratic basis of
  the pixel position give all the sums of (7), see ``_sigma_grads``; w against v_out gives (5)),
  which on XLA:CPU costs far less than a reduction per entry and quantity (5k_256 backward ~20%
  faster), and a scatter-add puts the round's rows into the per-Gaussian gradients.
- A batch of images is one flat set of tiles (Gaussian ids offset per image, ``jax.custom_batching``
  under vmap), so batched renders share one window.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vasa3d_jax.constants import ALPHA_THRESHOLD, MAX_ALPHA, TRANSMITTANCE_THRESHOLD
from vasa3d_jax.kernels.splat.config import SplatConfig



def check_inputs(means2d, conics, opacities, colors, background, isect_gids, tile_offsets, *, width, height, tile_size):
    """Raise ValueError on shapes that do not follow the contract above (before any work runs)."""
    if means2d.ndim < 2 or means2d.shape[-1] != 2:
        raise ValueError(f"means2d must be (..., N, 2); got {means2d.shape=}")
    lead, n = means2d.shape[:-2], means2d.shape[-2]
    if conics.shape != lead + (n, 3):
        raise ValueError(f"conics must be {lead + (n, 3)}; got {conics.shape=}")
    if opacities.shape != lead + (n,):
        raise ValueError(f"opacities must be {lead + (n,)}; got {opacities.shape=}")
    if colors.ndim != len(lead) + 2 or colors.shape[:-1] != lead + (n,):
        raise ValueError(f"colors must be {lead + (n, 'D')}; got {colors.shape=}")
    if background.shape[-1:] != colors.shape[-1:]:
        raise ValueError(f"background must be (..., D) with D = {colors.shape[-1]}; got {background.shape=}")
    if width < 1 or height < 1 or tile_size < 1:
        raise ValueError(f"image and tile sizes must be positive; got {width=} {height=} {tile_size=}")
    n_tiles = (-(-width // tile_size)) * (-(-height // tile_size))
    if tile_offsets.shape != lead + (n_tiles + 1,):
        raise ValueError(f"tile_offsets must be {lead + (n_tiles + 1,)} for {width=} {height=} {tile_size=}; got {tile_offsets.shape=}")
    if isect_gids.ndim != len(lead) + 1 or isect_gids.shape[:-1] != lead:
        raise ValueError(f"isect_gids must be {lead + ('E',)}; got {isect_gids.shape=}")


def _tile_layout(width, height, ts):
    n_tx, n_ty = -(-width // ts), -(-height // ts)
    return n_tx, n_ty, n_tx * n_ty, ts * ts


def _to_tiles(img, width, height, ts, fill):
    """(H, W, ...) image -> (n_tiles, ts*ts, ...) tile-major pixels, padding with ``fill``."""
    n_tx, n_ty, n_tiles, p = _tile_layout(width, height, ts)
    pad = [(0, n_ty * ts - height), (0, n_tx * ts - width)] + [(0, 0)] * (img.ndim - 2)
    img = jnp.pad(img, pad, constant_values=fill)
    img = img.reshape((n_ty, ts, n_tx, ts) + img.shape[2:])
    img = jnp.moveaxis(img, 2, 1)
    return img.reshape((n_tiles, p) + img.shape[4:])


def _from_tiles(tiles, width, height, ts):
    """Inverse of ``_to_tiles`` (drops the padding)."""
    n_tx, n_ty, _, _ = _tile_layout(width, height, ts)
    img = tiles.reshape((n_ty, n_tx, ts, ts) + tiles.shape[2:])
    img = jnp.moveaxis(img, 2, 1).reshape((n_ty * ts, n_tx * ts) + tiles.shape[2:])
    return img[:height, :width]


def _queue(priority, busy):
    """Tile ids, busy tiles first and longest work first (so the last slots to drain are short)."""
    return jnp.argsort(jnp.where(busy, -priority, 1), stable=True).astype(jnp.int32)


def _run_slots(queue, n_busy, sink, cfg, load, advance, store, carry):
    """Run every busy tile through a fixed window of ``cfg.window`` slots, refilling as tiles finish.

    queue (>= n_busy,) int32 tile ids, the n_busy busy ones first; ``sink`` is the id of a tile
    with no work (empty slots hold it). The callbacks work on the (window,) slot tiles:
    load(tiles) -> state of fresh slots; advance(state, tiles) -> (state, finished (window,), out)
    runs one round of ``cfg.steps`` list entries; store(carry, tiles, state, finished, out) -> carry
    saves the round's output and what finished tiles leave behind. Returns the final carry.
    """
    width = _window(queue.shape[0] - 1, cfg.window)
    queue = jnp.concatenate([queue, jnp.full((width,), sink, jnp.int32)])
    slot = jnp.arange(width, dtype=jnp.int32)
    tiles = jnp.where(slot < n_busy, queue[:width], sink)

    def body(args):
        tiles, head, state, carry = args
        state, finished, out = advance(state, tiles)
        finished = finished | (tiles == sink)
        carry = store(carry, tiles, state, finished, out)
        rank = jnp.cumsum(finished.astype(jnp.int32)) - 1
        take = head + rank
        fresh = jnp.where(take < n_busy, queue[jnp.minimum(take, queue.shape[0] - 1)], sink)
        tiles = jnp.where(finished, fresh, tiles)
        state = jax.tree.map(lambda new, old: jnp.where(_expand(finished, new), new, old), load(tiles), state)
        return tiles, head + rank[-1] + 1, state, carry

    init = (tiles, jnp.minimum(n_busy, width), load(tiles), carry)
    return jax.lax.while_loop(lambda a: jnp.any(a[0] != sink), body, init)[3]


def _window(num_tiles: int, widest: int) -> int:
    """Slots for ``num_tiles`` tiles: about an eighth of them (a head covers a third of the image,
    so the window stays full until the queue drains), a power of two in [16, widest]."""
    return int(min(widest, max(16, 2 ** round(math.log2(max(num_tiles, 1) / 8)))))


def _expand(mask, like):
    return mask.reshape(mask.shape + (1,) * (like.ndim - 1))


class _Tiles(NamedTuple):
    """A batch of images flattened into M = B n_tiles tiles (plus a sink tile M), for the loops."""

    table: jax.Array  # (B N, 6 + D): mu_x, mu_y, a, b, c, opacity, colour
    gids: jax.Array  # (B E,) Gaussian rows of ``table``, per image offset by b N
    starts: jax.Array  # (M + 1,) first position of each tile's list in ``gids`` (sink: 0)
    counts: jax.Array  # (M + 1,) list lengths (sink: 0)
    origin: jax.Array  # (M + 1, 2) pixel x, y of each tile's top-left corner
    pixel: jax.Array  # (2, P) pixel-centre offsets inside a tile (+0.5, gsplat)
    inside: jax.Array  # (M + 1, P) bool, pixel lies in the image


def _flatten(means2d, conics, opacities, colors, isect_gids, tile_offsets, width, height, ts) -> _Tiles:
    lead, n, d = means2d.shape[:-2], means2d.shape[-2], colors.shape[-1]
    b = math.prod(lead)
    e = max(isect_gids.shape[-1], 1)
    n_tx, _, n_tiles, p = _tile_layout(width, height, ts)
    table = jnp.concatenate([means2d, conics, opacities[..., None], colors], axis=-1).reshape(b * n, 6 + d)
    gids = isect_gids.reshape(b, -1)
    gids = jnp.pad(gids, ((0, 0), (0, e - gids.shape[1])))
    gids = (gids + (jnp.arange(b, dtype=jnp.int32) * n)[:, None]).reshape(b * e)
    offsets = tile_offsets.reshape(b, n_tiles + 1)
    starts = (offsets[:, :-1] + (jnp.arange(b, dtype=jnp.int32) * e)[:, None]).reshape(-1)
    counts = (offsets[:, 1:] - offsets[:, :-1]).reshape(-1)
    local = jnp.arange(n_tiles, dtype=jnp.int32)
    origin = jnp.stack([local % n_tx, local // n_tx]) * ts
    origin = jnp.pad(jnp.tile(origin, (1, b)), ((0, 0), (0, 1))).T.astype(table.dtype)
    q = jnp.arange(p, dtype=jnp.int32)
    pixel = jnp.stack([q % ts, q // ts]).astype(table.dtype) + 0.5
    inside = _to_tiles(jnp.ones((height, width), bool), width, height, ts, False)
    inside = jnp.concatenate([jnp.tile(inside, (b, 1)), jnp.zeros((1, p), bool)])
    return _Tiles(table, gids.astype(jnp.int32), jnp.append(starts, 0).astype(jnp.int32),
                  jnp.append(counts, 0).astype(jnp.int32), origin, pixel, inside)


def _entry(t: _Tiles, start, pos, valid, origin):
    """List entries of a window's tiles: equations (1)-(2) for all their pixels.

    start (W,), origin (W, 2); pos and valid (..., W): entry pos of each tile's list, for any
    leading dims (the forward takes an iteration's entries at once: one gather and one exp
    instead of one per entry, ~15% faster at 5k). Returns gid (..., W), the gathered row
    (..., W, 6 + D), raw alpha o exp(-sigma) and alpha (both (..., W, P)). Skips are folded in:
    raw = 0 where sigma < 0 or the entry is not valid, alpha = 0 where (2) skips, so a pixel uses
    the entry iff alpha > 0.
    """
    gid = t.gids[jnp.where(valid, start + pos, 0)]
    row = t.table[gid]
    dx = (row[..., 0] - origin[..., 0])[..., None] - t.pixel[0]
    dy = (row[..., 1] - origin[..., 1])[..., None] - t.pixel[1]
    a, b, c = row[..., 2, None], row[..., 3, None], row[..., 4, None]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    vis = jnp.exp(-jnp.where((sigma >= 0) & valid[..., None], sigma, jnp.inf))  # skip inside the exp: module doc
    raw = row[..., 5, None] * vis
    alpha = jnp.where(raw >= ALPHA_THRESHOLD, jnp.minimum(MAX_ALPHA, raw), 0.0)
    return gid, row, raw, alpha


def _sigma_grads(mom, row, centre):
    """(7) for entries whose v_sigma has pixel moments ``mom`` (6, ...) against (1, q_x, q_y, q_x^2,
    q_x q_y, q_y^2), q the pixel centre relative to ``centre`` (2, ...); ``row`` (6 + D, ...) is
    the entries' table rows. Returns dL/dmu2d, dL/dconic and dL/do stacked, (6, ...).

    With c = mu2d - centre, d = c - q, so sum v d_x = c_x m_0 - m_x, sum v d_x^2 = c_x^2 m_0 - 2 c_x m_x
    + m_xx and so on; dL/do = sum vis dL/dalpha = -m_0 / o, as v_sigma = -o vis dL/dalpha.
    """
    m0, mx, my, mxx, mxy, myy = mom
    cx, cy = row[0] - centre[0], row[1] - centre[1]
    a, b, c, o = row[2], row[3], row[4], row[5]
    sx, sy = cx * m0 - mx, cy * m0 - my
    sxx = cx * (cx * m0 - 2 * mx) + mxx
    sxy = cx * (cy * m0 - my) - cy * mx + mxy
    syy = cy * (cy * m0 - 2 * my) + myy
    v_o = jnp.where(o > 0, -m0 / jnp.where(o > 0, o, 1.0), 0.0)  # o <= 0 never passes (2)
    return jnp.stack([a * sx + b * sy, b * sx + c * sy, 0.5 * sxx, sxy, 0.5 * syy, v_o])


def _fwd_flat(means2d, conics, opacities, colors, isect_gids, tile_offsets, *, width, height, ts, cfg,
              with_n_contrib=True):
    """Equations (1)-(3) for any leading batch dims. Returns C (..., H, W, D), T_final, n_contrib
    (zeros unless ``with_n_contrib``: tracking it costs ~5-10% of the forward)."""
    lead, d = means2d.shape[:-2], colors.shape[-1]
    # Colour channels travel in pairs, as the real and imaginary parts of one complex element (a
    # zero channel pads an odd D): XLA:CPU's fused colour update re-evaluates the cheap (2)-(3)
    # chain once per element, so pairs halve that work. Exact: w (a + ib) is formed as w a + i w b.
    colors = jnp.pad(colors, [(0, 0)] * (colors.ndim - 1) + [(0, d % 2)])
    t = _flatten(means2d, conics, opacities, colors, isect_gids, tile_offsets, width, height, ts)
    m = t.counts.shape[0] - 1
    steps, unroll = cfg.steps, cfg.unroll
    dtype = t.table.dtype
    pairs, ctype = (d + 1) // 2, jnp.result_type(dtype, jnp.complex64)

    def load(tiles):
        w, p = tiles.shape[0], t.pixel.shape[1]
        return dict(trans=jnp.where(t.inside[tiles], 1.0, -1.0).astype(dtype),
                    colour=jnp.zeros((w, pairs, p), ctype),
                    last=jnp.zeros((w, p), jnp.int32), ptr=jnp.zeros((w,), jnp.int32))

    def advance(state, tiles):
        start, count, origin = t.starts[tiles], t.counts[tiles], t.origin[tiles]
        ptr = state["ptr"]

        def step(i, carry):
            trans, colour, last = carry
            entries = ptr + i * unroll + jnp.arange(unroll, dtype=jnp.int32)[:, None]  # (unroll, W)
            _, rows, _, alphas = _entry(t, start, entries, entries < count, origin)
            for u in range(unroll):
                pos, row, alpha = entries[u], rows[u], alphas[u]
                # A live pixel has T > 1e-4 and a stopped one holds -T, so one test covers (3): T (1 -
                # alpha) > 1e-4 iff the pixel is live and does not stop here (alpha = 0 leaves T).
                t_next = trans * (1.0 - alpha)
                go = t_next > TRANSMITTANCE_THRESHOLD
                w = jnp.where(go, alpha * trans, 0.0)  # > 0 exactly where the entry contributes
                trans = jnp.where(go, t_next, -jnp.abs(trans))
                wc = w[:, None, :]
                colour = colour + jax.lax.complex(wc * row[:, 6::2, None], wc * row[:, 7::2, None])
                if with_n_contrib:
                    last = jnp.where(w > 0, (pos + 1)[:, None], last)
            return trans, colour, last

        trans, colour, last = jax.lax.fori_loop(0, steps // unroll, step,
                                                (state["trans"], state["colour"], state["last"]))
        ptr = jnp.minimum(ptr + steps, count)
        finished = (ptr >= count) | ~jnp.any(trans > 0, axis=1)
        return dict(trans=trans, colour=colour, last=last, ptr=ptr), finished, None

    def store(carry, tiles, state, finished, _):
        idx = jnp.where(finished, tiles, m)
        return jax.tree.map(lambda c, v: c.at[idx].set(v), carry, (state["trans"], state["colour"], state["last"]))

    carry = (jnp.ones(t.inside.shape, dtype), jnp.zeros((m + 1, pairs, t.inside.shape[1]), ctype),
             jnp.zeros(t.inside.shape, jnp.int32))  # untouched tiles: T = 1
    busy = t.counts > 0
    trans, colour, last = _run_slots(_queue(t.counts, busy), jnp.sum(busy), m, cfg, load, advance, store, carry)

    def image(x):  # (M + 1, P, ...) tile-major -> (..., H, W, ...)
        x = x[:m].reshape((math.prod(lead), m // math.prod(lead)) + x.shape[1:])
        x = jax.vmap(lambda y: _from_tiles(y, width, height, ts))(x)
        return x.reshape(lead + x.shape[1:])

    colour = jnp.stack([colour.real, colour.imag], axis=-1).astype(dtype)  # (M + 1, pairs, P, 2)
    colour = jnp.moveaxis(colour, 1, 2).reshape(m + 1, -1, 2 * pairs)[..., :d]  # (M + 1, P, D)
    return image(colour), image(jnp.abs(trans)), image(last)


def _bwd_flat(means2d, conics, opacities, colors, isect_gids, tile_offsets, T_final, n_contrib, v_out,
              alpha_term, *, width, height, ts, cfg):
    """Equations (5)-(7) for any leading batch dims; alpha_term = T_final (v_alpha - bg . v_out).

    Returns the per-Gaussian gradient rows (..., N, 6 + D): means2d, conics, opacity, colour.
    """
    lead, n, d = means2d.shape[:-2], means2d.shape[-2], colors.shape[-1]
    b = math.prod(lead)
    t = _flatten(means2d, conics, opacities, colors, isect_gids, tile_offsets, width, height, ts)
    m = t.counts.shape[0] - 1
    steps, unroll = cfg.steps, cfg.bwd_unroll
    dtype = t.table.dtype

    def tiles_of(img, fill):
        img = img.reshape((b, height, width) + img.shape[len(lead) + 2:])
        x = jax.vmap(lambda y: _to_tiles(y, width, height, ts, fill))(img)
        x = x.reshape((b * x.shape[1],) + x.shape[2:])
        return jnp.concatenate([x, jnp.full((1,) + x.shape[1:], fill, x.dtype)])

    last_t = tiles_of(n_contrib, 0)
    trans0 = tiles_of(T_final, 1.0)
    v_out_t = jnp.moveaxis(tiles_of(v_out, 0.0), -1, 1)  # (M + 1, D, P)
    aterm_t = tiles_of(alpha_term, 0.0)
    hi = jnp.max(last_t, axis=1)
    sink = b * n
    half = ts / 2
    q = t.pixel - half  # pixel centres relative to the tile centre
    basis = jnp.stack([jnp.ones_like(q[0]), q[0], q[1], q[0] * q[0], q[0] * q[1], q[1] * q[1]], axis=-1)

    def load(tiles):
        trans = trans0[tiles]
        return dict(trans=trans, behind=jnp.zeros_like(trans), ptr=hi[tiles], last=last_t[tiles],
                    aterm=aterm_t[tiles], vo=v_out_t[tiles])

    def advance(state, tiles):
        start, origin = t.starts[tiles], t.origin[tiles]
        ptr, last, aterm, vo = state["ptr"], state["last"], state["aterm"], state["vo"]

        def step(carry, i):
            trans, behind = carry
            outs = []
            for u in range(unroll):
                pos = ptr - 1 - (i * unroll + u)
                valid = pos >= 0
                gid, row, raw, alpha = _entry(t, start, pos, valid, origin)
                keep = (alpha > 0) & (pos[:, None] < last)
                om = 1.0 - alpha
                trans = jnp.where(keep, trans / om, trans)  # T_i, in front of entry i
                w = jnp.where(keep, alpha * trans, 0.0)
                g = sum(row[:, 6 + k, None] * vo[:, k] for k in range(d))  # c_i . v_out
                v_alpha = trans * g + (aterm - behind) / om
                v_sigma = jnp.where(keep & (raw <= MAX_ALPHA), -raw * v_alpha, 0.0)
                behind = behind + w * g
                outs.append((v_sigma, w, row, jnp.where(valid, gid, sink)))
            return (trans, behind), tuple(outs)

        (trans, behind), out = jax.lax.scan(step, (state["trans"], state["behind"]), jnp.arange(steps // unroll))
        # The pixel sums of (5) and (7) for the round's entries at once, as matrix products (an
        # XLA:CPU reduction per entry and quantity costs several times more): the moments of v_sigma
        # against the basis give its sums times d = (mu2d - tile centre) - q, the colour gradient
        # is w against v_out. Per unrolled slot u, ``out[u]`` holds the entries i * unroll + u.
        mom = jnp.stack([jnp.einsum("swp,pk->ksw", o[0], basis) for o in out], 2).reshape((6, steps, -1))
        v_col = jnp.stack([jnp.einsum("swp,wkp->ksw", o[1], vo) for o in out], 2).reshape((d, steps, -1))
        row, gids = (jnp.stack(x, 1).reshape((steps,) + x[0].shape[1:]) for x in zip(*(o[2:] for o in out)))
        rows = jnp.concatenate([_sigma_grads(mom, jnp.moveaxis(row, -1, 0), origin.T[:, None] + half), v_col])
        ptr = jnp.maximum(ptr - steps, 0)
        return dict(state, trans=trans, behind=behind, ptr=ptr), ptr <= 0, (jnp.moveaxis(rows, 0, -1), gids)

    def store(grads, tiles, state, finished, out):
        rows, gids = out
        return grads.at[gids.reshape(-1)].add(rows.reshape(-1, 6 + d))

    busy = hi > 0
    grads = _run_slots(_queue(hi, busy), jnp.sum(busy), m, cfg, load, advance, store,
                       jnp.zeros((sink + 1, 6 + d), dtype))
    return grads[:sink].reshape(lead + (n, 6 + d))


@functools.lru_cache(maxsize=None)
def _batched(kind: str, width: int, height: int, ts: int, cfg: SplatConfig, **options):
    """``_fwd_flat`` / ``_bwd_flat`` as a function that ``jax.vmap`` batches by adding a leading dim.

    Without this, vmap would turn the ladder's ``lax.switch`` into a select that runs every branch;
    here a vmapped call simply composites all images' tiles together.
    """
    impl = functools.partial(_fwd_flat if kind == "fwd" else _bwd_flat, width=width, height=height, ts=ts, cfg=cfg,
                             **options)

    @jax.custom_batching.custom_vmap
    def fn(*args):
        return impl(*args)

    @fn.def_vmap
    def rule(axis_size, in_batched, *args):
        args = [x if bat else jnp.broadcast_to(x, (axis_size,) + x.shape) for x, bat in zip(args, in_batched)]
        out = fn(*args)
        return out, jax.tree.map(lambda _: True, out)

    return fn


def rasterize_fwd_xla(means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
                      *, width: int, height: int, tile_size: int, config: SplatConfig | None = None,
                      with_n_contrib: bool = True):
    """Equations (1)-(4). Returns out (..., H, W, D), T_final (..., H, W), n_contrib (..., H, W) int32
    (all zeros when not ``with_n_contrib``: a render that is not differentiated skips it)."""
    check_inputs(means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
                 width=width, height=height, tile_size=tile_size)
    cfg = config or SplatConfig(tile_size=tile_size)
    fn = _batched("fwd", width, height, tile_size, cfg, with_n_contrib=with_n_contrib)
    colour, t_final, n_contrib = fn(means2d, conics, opacities, colors, isect_gids, tile_offsets)
    return colour + t_final[..., None] * background[..., None, None, :], t_final, n_contrib


def rasterize_bwd_xla(means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
                      T_final, n_contrib, v_out, v_alpha, *, width: int, height: int, tile_size: int,
                      config: SplatConfig | None = None):
    """Equations (5)-(8). Returns v_means2d (..., N, 2), v_conics (..., N, 3), v_opacities (..., N), v_colors (..., N, D), v_background (..., D)."""
    check_inputs(means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
                 width=width, height=height, tile_size=tile_size)
    cfg = config or SplatConfig(tile_size=tile_size)
    alpha_term = T_final * (v_alpha - jnp.einsum("...hwd,...d->...hw", v_out, background))
    fn = _batched("bwd", width, height, tile_size, cfg)
    g = fn(means2d, conics, opacities, colors, isect_gids, tile_offsets, T_final, n_contrib, v_out, alpha_term)
    v_background = jnp.einsum("...hw,...hwd->...d", T_final, v_out)
    return g[..., 0:2], g[..., 2:5], g[..., 5], g[..., 6:], v_background
