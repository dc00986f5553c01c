"""Pallas backward pass of the splatting compositor (gsplat 1.5.3 semantics).

Recomputes the forward back to front instead of storing it. One program per screen tile and
batch element, as the forward (``pallas_fwd.py``). Per pixel the program starts from the
saved ``T_final`` and ``n_contrib`` and walks the tile list from entry ``n_max - 1`` (``n_max`` =
largest ``n_contrib`` in the tile) down to 0; entry ``j`` counts for a pixel only if
``j < n_contrib`` and it passed the forward skips. With ``v_C`` the cotangent of the colour,
``v_A`` that of ``alpha_out = 1 - T_final`` and ``buf`` the colour composited behind the current
Gaussian, each valid entry applies (reference/splatting.md §1.3 item 9;
``gsplat/cuda/csrc/RasterizeToPixels3DGSBwd.cu``)::

    (1) sigma, vis = exp(-sigma), alpha = min(0.999, o vis)      as in the forward
    (2) T <- T / (1 - alpha)                                      transmittance in front of i
    (3) v_c_i += alpha T v_C
    (4) v_alpha = sum_k (c_ik T - buf_k / (1 - alpha)) v_C_k
                  + T_final / (1 - alpha) (v_A - sum_k bg_k v_C_k)
    (5) only if o vis <= 0.999 (the alpha clamp inactive):
          v_sigma = -o vis v_alpha
          v_conic_i += (v_sigma d_x^2 / 2, v_sigma d_x d_y, v_sigma d_y^2 / 2)
          v_mu_i    += v_sigma (a d_x + b d_y, b d_x + c d_y)
          v_o_i     += vis v_alpha
    (6) buf += c_i alpha T
    (7) v_bg = sum_pixels T_final v_C

The bracket ``v_A - bg . v_C`` of (4) and the sum (7) are per-pixel, so they are formed in XLA
outside the kernel.

Per-Gaussian reduction. The program sums (3)-(5) over its pixels and writes one gradient row
``[v_mx, v_my, v_a, v_b, v_c, v_o, v_c_0..]`` per tile-list entry (each entry belongs to exactly
one program, so no two programs write the same row); ``jax.ops.segment_sum`` over ``isect_gids``
then folds the rows of all tiles into per-Gaussian gradients. Atomics are not used because:
only Triton's ``atomic_add`` has an interpret-mode discharge rule, and generic Pallas gives Mosaic
GPU none, so one kernel body could not serve both backends and the CPU; and the fold is left to
XLA, which makes it deterministic on CPU (and on GPU under XLA's deterministic-ops flag), whereas
float atomics change the summation order, and so the last bits of every gradient, between runs.
The row buffer is a zeros input aliased to the output (``input_output_aliases``), so entries no
program writes (past a tile's ``n_max``, entries no pixel takes, and the padding after
``tile_offsets[-1]``) are exactly zero instead of uninitialised (NaN in interpret mode). Cost:
(E, 6 + D) float32 written once and read once by the fold.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from vasa3d_jax.kernels.splat import pallas_common as common


def _rasterize_bwd_kernel(offsets_ref, gids_ref, params_ref, lane_x_ref, lane_y_ref,
                          t_final_ref, n_contrib_ref, v_color_ref, v_t_final_ref, rows_in_ref,
                          rows_ref, *, tile_size: int, tiles_w: int, num_channels: int):
    """One tile: equations (1)-(6) back to front, then one gradient row per list entry."""
    del rows_in_ref  # aliased with rows_ref: the zeros every unwritten row keeps
    bi, ty, tx = pl.program_id(0), pl.program_id(1), pl.program_id(2)
    start = offsets_ref[bi, ty * tiles_w + tx]
    px = lane_x_ref[...] + (tx * tile_size).astype(jnp.float32)
    py = lane_y_ref[...] + (ty * tile_size).astype(jnp.float32)
    t_final = t_final_ref[...]
    n_contrib = n_contrib_ref[...].astype(jnp.float32)  # exact up to 2^24 entries per tile
    v_color = tuple(v_color_ref[k, :] for k in range(num_channels))
    v_t_final = v_t_final_ref[...]
    n_max = jnp.max(n_contrib).astype(jnp.int32)

    def backprop_one(i, state):
        t, buf = state
        j = n_max - 1 - i
        e = start + j
        gid = gids_ref[bi, e]
        mx, my = params_ref[bi, gid, 0], params_ref[bi, gid, 1]
        a, b, c = params_ref[bi, gid, 2], params_ref[bi, gid, 3], params_ref[bi, gid, 4]
        opacity = params_ref[bi, gid, 5]
        rgb = tuple(params_ref[bi, gid, common.PARAM_COLUMNS + k] for k in range(num_channels))
        dx, dy = mx - px, my - py
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy  # (1)
        vis = jnp.exp(-sigma)
        alpha = jnp.minimum(common.MAX_ALPHA, opacity * vis)
        valid = ((j.astype(jnp.float32) < n_contrib) & (sigma >= 0.0)
                 & (alpha >= common.ALPHA_THRESHOLD))
        ra = 1.0 / (1.0 - alpha)
        t_front = t * ra  # (2)
        fac = alpha * t_front

        def write_row():
            v_alpha = t_final * ra * v_t_final  # (4)
            for k in range(num_channels):
                v_alpha = v_alpha + (rgb[k] * t_front - buf[k] * ra) * v_color[k]
            unclamped = valid & (opacity * vis <= common.MAX_ALPHA)  # (5)
            v_sigma = jnp.where(unclamped, -opacity * vis * v_alpha, 0.0)
            grads = (
                v_sigma * (a * dx + b * dy),
                v_sigma * (b * dx + c * dy),
                0.5 * v_sigma * dx * dx,
                v_sigma * dx * dy,
                0.5 * v_sigma * dy * dy,
                jnp.where(unclamped, vis * v_alpha, 0.0),
            ) + tuple(jnp.where(valid, fac * v_color[k], 0.0)  # (3)
                      for k in range(num_channels))
            for col, g in enumerate(grads):
                rows_ref[bi, e, col] = jnp.sum(g)

        # gsplat skips an entry no pixel of a warp takes; here no pixel of the tile: one
        # reduction instead of 6 + D, and the row keeps its zeros.
        pl.when(jnp.max(jnp.where(valid, 1.0, 0.0)) > 0.0)(write_row)
        buf = tuple(jnp.where(valid, buf[k] + rgb[k] * fac, buf[k])  # (6)
                    for k in range(num_channels))
        return jnp.where(valid, t_front, t), buf

    state0 = (t_final, tuple(common.filled(px, 0.0) for _ in range(num_channels)))
    jax.lax.fori_loop(0, n_max, backprop_one, state0)


def _bwd_call(offsets, gids, params, t_final, n_contrib, v_color, v_t_final, *, tile_size,
              tiles_h, tiles_w, num_channels, interpret, params_for_compiler):
    """The ``pallas_call`` over a batch (leading axis B of every argument) -> gradient rows
    (B, E, 6 + D), one per tile-list entry, zeros where no program wrote."""
    batch, lanes, d = offsets.shape[0], tile_size * tile_size, num_channels
    pixels = pl.BlockSpec((None, None, None, lanes), lambda b, i, j: (b, i, j, 0))
    kernel = functools.partial(_rasterize_bwd_kernel, tile_size=tile_size, tiles_w=tiles_w,
                               num_channels=d)
    rows_shape = (batch, gids.shape[1], common.PARAM_COLUMNS + d)
    return pl.pallas_call(
        kernel,
        grid=(batch, tiles_h, tiles_w),
        in_specs=[pl.BlockSpec(memory_space=pl.ANY)] * 3
        + [pl.BlockSpec((lanes,), lambda b, i, j: (0,))] * 2
        + [pixels, pixels,
           pl.BlockSpec((None, None, None, d, lanes), lambda b, i, j: (b, i, j, 0, 0)),
           pixels, pl.BlockSpec(memory_space=pl.ANY)],
        out_specs=pl.BlockSpec(memory_space=pl.ANY),
        out_shape=jax.ShapeDtypeStruct(rows_shape, jnp.float32),
        input_output_aliases={9: 0},
        interpret=interpret,
        compiler_params=params_for_compiler,
        name="rasterize_bwd",
    )(offsets, gids, params, *common.lane_centres(tile_size), t_final, n_contrib, v_color,
      v_t_final, jnp.zeros(rows_shape, jnp.float32))


def rasterize_bwd_pallas(means2d, conics, opacities, colors, background, isect_gids,
                         tile_offsets, T_final, n_contrib, v_out, v_alpha, *, width: int,
                         height: int, tile_size: int, interpret: bool = False,
                         backend: common.Backend = "triton", num_warps: int | None = None,
                         num_stages: int | None = None):
    """Gradients of ``rasterize_fwd_pallas``; same contract as ``rasterize_bwd_xla``.

    Args:
      means2d, conics, opacities, colors, background, isect_gids, tile_offsets: the forward
        inputs (see ``rasterize_fwd_pallas``).
      T_final: (H, W) final transmittance saved by the forward.
      n_contrib: (H, W) int, tile-list entries consumed per pixel, saved by the forward.
      v_out: (H, W, D) cotangent of ``out``.
      v_alpha: (H, W) cotangent of ``alpha_out = 1 - T_final``.
      width, height, tile_size, interpret, backend, num_warps, num_stages: as the forward.

    Returns:
      ``(v_means2d (N, 2), v_conics (N, 3), v_opacities (N,), v_colors (N, D),
      v_background (D,))``.
    """
    tiles_h, tiles_w, d = common.check_inputs(
        means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
        width=width, height=height, tile_size=tile_size)
    for name, x, shape in (("T_final", T_final, (height, width)),
                           ("n_contrib", n_contrib, (height, width)),
                           ("v_out", v_out, (height, width, d)),
                           ("v_alpha", v_alpha, (height, width))):
        if x.shape != shape:
            raise ValueError(f"{name}.shape={x.shape} must be {shape} (height, width"
                             f"{', D' if len(shape) == 3 else ''})")
    if not jnp.issubdtype(n_contrib.dtype, jnp.integer):
        raise ValueError(f"n_contrib.dtype={n_contrib.dtype} must be integer (the forward's "
                         "count of consumed tile-list entries)")
    n = means2d.shape[0]
    gids = common.nonempty_gids(isect_gids)
    t_final = T_final.astype(jnp.float32)
    v_out = v_out.astype(jnp.float32)
    v_t_final = v_alpha.astype(jnp.float32) - v_out @ background.astype(jnp.float32)  # (4)
    v_background = jnp.einsum("hw,hwd->d", t_final, v_out)  # (7)
    tiled = functools.partial(common.to_tiles, tiles_h=tiles_h, tiles_w=tiles_w,
                              tile_size=tile_size)
    kernel_call = functools.partial(
        _bwd_call, tile_size=tile_size, tiles_h=tiles_h, tiles_w=tiles_w, num_channels=d,
        interpret=interpret,
        params_for_compiler=common.compiler_params(backend, tile_size, num_warps, num_stages))
    rows = common.batched_kernel(kernel_call)(
        tile_offsets.astype(jnp.int32), gids,
        common.pack_params(means2d, conics, opacities, colors), tiled(t_final),
        tiled(n_contrib.astype(jnp.int32)), tiled(v_out), tiled(v_t_final))
    per_gaussian = jax.ops.segment_sum(rows, gids, num_segments=n + 1)[:n]
    return (per_gaussian[:, 0:2].astype(means2d.dtype),
            per_gaussian[:, 2:5].astype(conics.dtype),
            per_gaussian[:, 5].astype(opacities.dtype),
            per_gaussian[:, common.PARAM_COLUMNS:].astype(colors.dtype),
            v_background.astype(background.dtype))
