"""Tile compositing of splatted Gaussians, forward and hand-written backward, in pure JAX.

This is the specification of the compositing stage and the CPU (XLA) path. The Pallas kernels
(``pallas_fwd.py`` / ``pallas_bwd.py``) implement the same contract:

    rasterize_fwd_ref(means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
                      *, width, height, tile_size, config=None) -> (out, T_final, n_contrib)
    rasterize_bwd_ref(means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
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
    alpha = 1 - T_final. ``config`` (a ``SplatConfig``) only tunes the XLA path's chunking.

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

How the XLA path runs it: the non-empty tiles are sorted by list length and processed
``tile_batch`` at a time (tiles of similar length together, so little work is padding); for each
batch a while loop walks the lists ``chunk`` entries per step, front to back, and exits as soon as
every pixel of every tile in the batch has stopped or its list is exhausted. Inside a chunk the
transmittance is a cumulative product over the chunk axis, so (3) becomes masks: T only decreases,
hence entry i contributes iff it is not skipped and T_in prod_{j <= i}(1 - alpha_j) > 1e-4. The
backward walks each tile's chunks in reverse from its last contributing one, recovering
T_i = T_after / prod_{j >= i}(1 - alpha_j) (a log-space sum) and S_i (a reverse cumulative sum),
both as small triangular matmuls, and adds per-entry gradients to the Gaussians with a scatter-add.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vasa3d_jax.kernels.splat.config import SplatConfig

ALPHA_THRESHOLD = 1.0 / 255.0  # gsplat 1.5.3 ALPHA_THRESHOLD: skip fainter contributions
MAX_ALPHA = 0.999  # gsplat 1.5.3 rasterize_to_pixels: alpha clamp (0.99 in later gsplat)
TRANSMITTANCE_THRESHOLD = 1e-4  # gsplat 1.5.3: stop once T would fall to this or below


def check_inputs(means2d, conics, opacities, colors, background, isect_gids, tile_offsets, *, width, height, tile_size):
    """Raise ValueError on shapes that do not follow the contract above (before any work runs)."""
    n = means2d.shape[0]
    if means2d.shape != (n, 2):
        raise ValueError(f"means2d must be (N, 2); got {means2d.shape=}")
    if conics.shape != (n, 3):
        raise ValueError(f"conics must be (N, 3) with N={n}; got {conics.shape=}")
    if opacities.shape != (n,):
        raise ValueError(f"opacities must be (N,) with N={n}; got {opacities.shape=}")
    if colors.ndim != 2 or colors.shape[0] != n:
        raise ValueError(f"colors must be (N, D) with N={n}; got {colors.shape=}")
    if background.shape != colors.shape[1:]:
        raise ValueError(f"background must be (D,) = {colors.shape[1:]}; got {background.shape=}")
    if width < 1 or height < 1 or tile_size < 1:
        raise ValueError(f"image and tile sizes must be positive; got {width=} {height=} {tile_size=}")
    n_tiles = (-(-width // tile_size)) * (-(-height // tile_size))
    if tile_offsets.shape != (n_tiles + 1,):
        raise ValueError(f"tile_offsets must be (n_tiles + 1,) = ({n_tiles + 1},) for {width=} {height=} {tile_size=}; got {tile_offsets.shape=}")
    if isect_gids.ndim != 1:
        raise ValueError(f"isect_gids must be (E,); got {isect_gids.shape=}")


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


def _pixel_centres(tiles, n_tx, ts):
    """(B,) tile ids -> (B, ts*ts) x and y pixel centres (+0.5, gsplat)."""
    p = jnp.arange(ts * ts, dtype=jnp.int32)
    px = (tiles % n_tx)[:, None] * ts + p % ts
    py = (tiles // n_tx)[:, None] * ts + p // ts
    return px.astype(jnp.float32) + 0.5, py.astype(jnp.float32) + 0.5


def _scan(op, x, reverse=False):
    """Inclusive cumulative ``op`` along axis 1 (the chunk axis).

    ``jnp.cumprod``/``jnp.cumsum`` lower to a reduce_window on CPU, O(K^2) work for K entries; the
    associative scan does O(K log K) with slices XLA fuses.
    """
    return jax.lax.associative_scan(op, x, reverse=reverse, axis=1)


def _gather_chunk(means2d, conics, opacities, colors, isect_gids, idx, valid, px, py):
    """Per-(tile, entry, pixel) quantities of equations (1)-(2) for one chunk.

    idx, valid: (B, K) list positions. Returns gids (B, K), d_x, d_y, sigma, vis = exp(-sigma),
    raw alpha o vis (all (B, K, P)), alpha (B, K, P) after the clamp and skips, and the gathered
    per-entry conics (B, K, 3), opacities (B, K) and colours (B, K, D).
    """
    e = isect_gids.shape[0]
    gid = jnp.where(valid, isect_gids[jnp.clip(idx, 0, e - 1)], 0)
    mu = means2d[gid]
    con = conics[gid]
    op = jnp.where(valid, opacities[gid], 0.0)
    col = colors[gid]
    dx = mu[:, :, 0, None] - px[:, None, :]
    dy = mu[:, :, 1, None] - py[:, None, :]
    a, b, c = con[:, :, 0, None], con[:, :, 1, None], con[:, :, 2, None]
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    vis = jnp.exp(-sigma)
    raw = op[:, :, None] * vis
    alpha = jnp.minimum(MAX_ALPHA, raw)
    keep = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD) & valid[:, :, None]
    return gid, dx, dy, vis, raw, jnp.where(keep, alpha, 0.0), keep, con, op, col


def _tile_batches(num_chunks, batch, tile_body, carry):
    """Run ``tile_body`` over the non-empty tiles, ``batch`` tiles at a time, longest lists first.

    num_chunks (n_tiles,) int32. Sorting tiles by their chunk count makes the tiles of a batch
    similar in length, so little work is padding; empty tiles are never visited.
    tile_body(carry, tiles (batch,), ok (batch,)) -> carry; padding slots hold the sink id n_tiles.
    """
    n_tiles = num_chunks.shape[0]
    order = jnp.argsort(-num_chunks, stable=True).astype(jnp.int32)
    order = jnp.concatenate([order, jnp.full((batch,), n_tiles, jnp.int32)])
    n_busy = jnp.sum(num_chunks > 0)

    def body(b, carry):
        start = b * batch
        ok = start + jnp.arange(batch) < n_busy
        tiles = jnp.where(ok, jax.lax.dynamic_slice(order, (start,), (batch,)), n_tiles)
        return tile_body(carry, tiles, ok)

    return jax.lax.fori_loop(0, (n_busy + batch - 1) // batch, body, carry)


def rasterize_fwd_ref(means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
                      *, width: int, height: int, tile_size: int, config: SplatConfig | None = None):
    """Equations (1)-(4). Returns out (H, W, D), T_final (H, W), n_contrib (H, W) int32."""
    check_inputs(means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
                 width=width, height=height, tile_size=tile_size)
    cfg = config or SplatConfig(tile_size=tile_size)
    k_chunk, batch, ts = cfg.chunk, cfg.tile_batch, tile_size
    n_tx, _, n_tiles, p = _tile_layout(width, height, ts)
    d = colors.shape[1]
    dtype = colors.dtype
    starts = tile_offsets[:-1]
    counts = tile_offsets[1:] - starts
    num_chunks = (counts + k_chunk - 1) // k_chunk
    starts_x = jnp.append(starts, 0)
    counts_x = jnp.append(counts, 0)
    kk = jnp.arange(k_chunk, dtype=jnp.int32)

    # Per tile pixel results, plus a sink row n_tiles that padding slots write to.
    inside = _to_tiles(jnp.ones((height, width), bool), width, height, ts, False)
    inside_x = jnp.concatenate([inside, jnp.zeros((1, p), bool)])
    num_chunks_x = jnp.append(num_chunks, 0)
    results = dict(
        T=jnp.ones((n_tiles + 1, p), dtype),
        C=jnp.zeros((n_tiles + 1, p, d), dtype),
        last=jnp.zeros((n_tiles + 1, p), jnp.int32),
    )

    def tile_body(results, tiles, ok):
        px, py = _pixel_centres(tiles, n_tx, ts)
        n_ch = num_chunks_x[tiles]
        first, count = starts_x[tiles], counts_x[tiles]

        def cond(state):
            r, _, _, _, stopped = state
            return jnp.any((n_ch > r) & ~jnp.all(stopped, axis=1))

        def chunk(state):
            r, t_in, c_acc, last, stopped = state
            base = r * k_chunk
            valid = base + kk < count[:, None]
            _, _, _, _, _, alpha, keep, _, _, col = _gather_chunk(
                means2d, conics, opacities, colors, isect_gids, first[:, None] + base + kk, valid, px, py)
            alpha = jnp.where(keep & ~stopped[:, None, :], alpha, 0.0)
            om = 1.0 - alpha
            incl = t_in[:, None, :] * _scan(jnp.multiply, om)  # T after each entry
            live = incl > TRANSMITTANCE_THRESHOLD  # T only decreases: a prefix of the chunk
            contrib = live & (alpha > 0.0)
            w = jnp.where(contrib, alpha * incl / om, 0.0)  # alpha_i T_i, T_i = T in front of i
            c_acc = c_acc + jnp.einsum("bkp,bkd->bpd", w, col)
            t_out = jnp.min(jnp.where(live, incl, t_in[:, None, :]), axis=1)
            k_last = jnp.max(jnp.where(contrib, kk[None, :, None] + 1, 0), axis=1)
            last = jnp.where(k_last > 0, base + k_last, last)
            return r + 1, t_out, c_acc, last, stopped | ~live[:, -1, :]

        init = (jnp.int32(0), jnp.ones((batch, p), dtype), jnp.zeros((batch, p, d), dtype),
                jnp.zeros((batch, p), jnp.int32), ~inside_x[tiles])
        _, t_out, c_acc, last, _ = jax.lax.while_loop(cond, chunk, init)
        return dict(T=results["T"].at[tiles].set(t_out), C=results["C"].at[tiles].set(c_acc),
                    last=results["last"].at[tiles].set(last))

    carry = _tile_batches(num_chunks, batch, tile_body, results)
    t_final = _from_tiles(carry["T"][:n_tiles], width, height, ts)
    color = _from_tiles(carry["C"][:n_tiles], width, height, ts)
    n_contrib = _from_tiles(carry["last"][:n_tiles], width, height, ts)
    out = color + t_final[..., None] * background
    return out, t_final, n_contrib


def rasterize_bwd_ref(means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
                      T_final, n_contrib, v_out, v_alpha, *, width: int, height: int, tile_size: int,
                      config: SplatConfig | None = None):
    """Equations (5)-(8). Returns v_means2d (N, 2), v_conics (N, 3), v_opacities (N,), v_colors (N, D), v_background (D,)."""
    check_inputs(means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
                 width=width, height=height, tile_size=tile_size)
    cfg = config or SplatConfig(tile_size=tile_size)
    k_chunk, batch, ts = cfg.chunk, cfg.tile_batch, tile_size
    n_tx, _, n_tiles, p = _tile_layout(width, height, ts)
    n, d = colors.shape
    dtype = colors.dtype
    starts = tile_offsets[:-1]
    starts_x = jnp.append(starts, 0)
    counts_x = jnp.append(tile_offsets[1:] - starts, 0)
    kk = jnp.arange(k_chunk, dtype=jnp.int32)
    upper_incl = (kk[:, None] >= kk[None, :]).astype(dtype)  # [k, j] = 1 for k >= j
    upper_strict = (kk[:, None] > kk[None, :]).astype(dtype)  # [k, j] = 1 for k > j

    def tiles_x(img, fill):
        t = _to_tiles(img, width, height, ts, fill)
        return jnp.concatenate([t, jnp.full((1,) + t.shape[1:], fill, t.dtype)])

    t_final_t = tiles_x(T_final, 1.0)
    last_t = tiles_x(n_contrib, 0)
    v_out_t = tiles_x(v_out, 0.0)
    v_alpha_t = tiles_x(v_alpha, 0.0)
    bg_dot = v_out_t @ background  # bg . v_out per pixel
    num_chunks = (jnp.max(last_t[:n_tiles], axis=1) + k_chunk - 1) // k_chunk
    num_chunks_x = jnp.append(num_chunks, 0)

    # Per-Gaussian gradients, columns [means2d (2), conics (3), opacity (1), colours (D)], and a sink row n.
    grads = jnp.zeros((n + 1, 6 + d), dtype)

    def tile_body(grads, tiles, ok):
        px, py = _pixel_centres(tiles, n_tx, ts)
        n_ch = num_chunks_x[tiles]
        first, count = starts_x[tiles], counts_x[tiles]
        vo, last, t_fin = v_out_t[tiles], last_t[tiles], t_final_t[tiles]
        alpha_term = t_fin * (v_alpha_t[tiles] - bg_dot[tiles])  # T_final (v_alpha - bg . v_out)

        def cond(state):
            return jnp.any(n_ch > state[0])

        def chunk(state):
            r, t_after, s_in, grads = state
            base = (n_ch - 1 - r) * k_chunk
            pos = base[:, None] + kk  # (B, K) positions within the tile lists
            valid = (pos >= 0) & (pos < count[:, None])
            gid, dx, dy, vis, raw, alpha, keep, con, op, col = _gather_chunk(
                means2d, conics, opacities, colors, isect_gids, first[:, None] + pos, valid, px, py)
            keep = keep & (pos[:, :, None] < last[:, None, :])
            alpha = jnp.where(keep, alpha, 0.0)
            om = 1.0 - alpha
            # Reverse cumulative sums over the chunk as one matmul each (cheap to compile and run):
            # T_i = T_after / prod_{j >= i}(1 - alpha_j) in log space; S_i . v_out = S_in + sum_{j > i} w_j c_j . v_out.
            t_i = t_after[:, None, :] * jnp.exp(-jnp.einsum("bkp,kj->bjp", jnp.log1p(-alpha), upper_incl))
            w = alpha * t_i
            g = jnp.einsum("bkd,bpd->bkp", col, vo)  # c_i . v_out
            wg = w * g
            behind = s_in[:, None, :] + jnp.einsum("bkp,kj->bjp", wg, upper_strict)
            v_a = t_i * g + (alpha_term[:, None, :] - behind) / om
            grad_ok = keep & (raw <= MAX_ALPHA)
            v_sigma = jnp.where(grad_ok, -raw * v_a, 0.0)
            a, b, c = con[:, :, 0, None], con[:, :, 1, None], con[:, :, 2, None]
            v_con = jnp.stack([jnp.sum(0.5 * v_sigma * dx * dx, -1), jnp.sum(v_sigma * dx * dy, -1),
                               jnp.sum(0.5 * v_sigma * dy * dy, -1)], axis=-1)
            v_mu = jnp.stack([jnp.sum(v_sigma * (a * dx + b * dy), -1),
                              jnp.sum(v_sigma * (b * dx + c * dy), -1)], axis=-1)
            v_op = jnp.sum(jnp.where(grad_ok, vis * v_a, 0.0), -1)
            v_col = jnp.einsum("bkp,bpd->bkd", w, vo)
            rows = jnp.concatenate([v_mu, v_con, v_op[..., None], v_col], axis=-1)
            grads = grads.at[jnp.where(valid, gid, n)].add(rows)
            return r + 1, t_i[:, 0, :], s_in + jnp.sum(wg, axis=1), grads

        init = (jnp.int32(0), t_fin, jnp.zeros((batch, p), dtype), grads)
        return jax.lax.while_loop(cond, chunk, init)[3]

    carry = _tile_batches(num_chunks, batch, tile_body, grads)
    v_background = jnp.einsum("hw,hwd->d", T_final, v_out)
    return carry[:n, 0:2], carry[:n, 2:5], carry[:n, 5], carry[:n, 6:], v_background
