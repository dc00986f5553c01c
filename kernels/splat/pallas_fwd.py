"""Pallas forward compositing of projected 2D Gaussians (gsplat 1.5.3 semantics).

One program per screen tile and batch element (grid ``(B, tiles_h, tiles_w)``; B = 1 unless the
call is vmapped, see ``pallas_common.batched_kernel``); each of its ``tile_size**2`` lanes is one
pixel ``p`` with centre ``(x + 0.5, y + 0.5)``. The program walks its tile's depth-sorted list
``[start, end)`` front to back and, for every entry ``i`` (Gaussian with mean ``mu_i``, conic
``(a, b, c)``, opacity ``o_i``, colour ``c_i``), computes (reference/splatting.md §1.3, item 8;
``gsplat/cuda/csrc/RasterizeToPixels3DGSFwd.cu``)::

    (1) d = mu_i - p,   sigma = 0.5 (a d_x^2 + c d_y^2) + b d_x d_y
    (2) alpha = min(0.999, o_i exp(-sigma));  skip i if sigma < 0 or alpha < 1/255
    (3) T_next = T (1 - alpha);  if T_next <= 1e-4 the pixel stops and i is NOT composited
    (4) otherwise C += c_i alpha T,  T = T_next,  n_contrib = (i - start) + 1
    (5) out = C + T_final bg,   T_final = T at the end (alpha_out = 1 - T_final)

starting from ``T = 1``, ``C = 0``. The list is read in chunks of ``chunk_size`` entries; after
each chunk the program stops as soon as every pixel of the tile has terminated (gsplat's
``__syncthreads_count(done)`` early exit).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from vasa3d_jax.kernels.splat import pallas_common as common


def _rasterize_fwd_kernel(offsets_ref, gids_ref, params_ref, lane_x_ref, lane_y_ref, color_ref,
                          t_final_ref, n_contrib_ref, *, width: int, height: int, tile_size: int,
                          tiles_w: int, num_channels: int, chunk_size: int):
    """One tile: equations (1)-(4) over the tile list, per-pixel state in registers."""
    bi, ty, tx = pl.program_id(0), pl.program_id(1), pl.program_id(2)
    tile = ty * tiles_w + tx
    start, end = offsets_ref[bi, tile], offsets_ref[bi, tile + 1]
    px = lane_x_ref[...] + (tx * tile_size).astype(jnp.float32)
    py = lane_y_ref[...] + (ty * tile_size).astype(jnp.float32)

    def composite_one(e, state):
        t, alive, n_contrib, color = state
        gid = gids_ref[bi, e]
        mx, my = params_ref[bi, gid, 0], params_ref[bi, gid, 1]
        a, b, c = params_ref[bi, gid, 2], params_ref[bi, gid, 3], params_ref[bi, gid, 4]
        opacity = params_ref[bi, gid, 5]
        dx, dy = mx - px, my - py
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy  # (1)
        alpha = jnp.minimum(common.MAX_ALPHA, opacity * jnp.exp(-sigma))  # (2)
        hit = (alive > 0.0) & (sigma >= 0.0) & (alpha >= common.ALPHA_THRESHOLD)
        t_next = t * (1.0 - alpha)
        stop = hit & (t_next <= common.TRANSMITTANCE_THRESHOLD)  # (3)
        take = hit & jnp.logical_not(stop)
        weight = alpha * t
        color = tuple(
            jnp.where(take, ck + params_ref[bi, gid, common.PARAM_COLUMNS + k] * weight, ck)
            for k, ck in enumerate(color))  # (4)
        t = jnp.where(take, t_next, t)
        n_contrib = jnp.where(take, (e - start + 1).astype(jnp.float32), n_contrib)
        alive = jnp.where(stop, 0.0, alive)
        return t, alive, n_contrib, color

    def chunk_cond(carry):
        s, (_, alive, _, _) = carry
        return (s < end) & (jnp.max(alive) > 0.0)

    def chunk_body(carry):
        s, state = carry
        chunk_end = jnp.minimum(s + chunk_size, end)
        return chunk_end, jax.lax.fori_loop(s, chunk_end, composite_one, state)

    # T, alive (1/0), n_contrib, C. Flags and counts are float32 in the loop (exact up to 2^24
    # list entries per tile) because Mosaic GPU loses integer signedness through loop carries.
    # Lanes past the image edge start done, so they never hold a tile's early exit back.
    alive0 = jnp.where((px < width) & (py < height), 1.0, 0.0)
    state0 = (common.filled(px, 1.0), alive0, common.filled(px, 0.0),
              tuple(common.filled(px, 0.0) for _ in range(num_channels)))
    _, (t, _, n_contrib, color) = jax.lax.while_loop(chunk_cond, chunk_body, (start, state0))
    for k, ck in enumerate(color):
        color_ref[k, :] = ck
    t_final_ref[...] = t
    n_contrib_ref[...] = n_contrib.astype(jnp.int32)


def _fwd_call(offsets, gids, params, *, width, height, tile_size, tiles_h, tiles_w, num_channels,
              chunk_size, interpret, params_for_compiler):
    """The ``pallas_call`` over a batch: offsets (B, n_tiles + 1), gids (B, E), params (B, N + 1,
    6 + D) -> colour (B, th, tw, D, lanes), T_final and n_contrib (B, th, tw, lanes)."""
    batch, lanes, d = offsets.shape[0], tile_size * tile_size, num_channels
    pixels = pl.BlockSpec((None, None, None, lanes), lambda b, i, j: (b, i, j, 0))
    kernel = functools.partial(_rasterize_fwd_kernel, width=width, height=height,
                               tile_size=tile_size, tiles_w=tiles_w, num_channels=d,
                               chunk_size=chunk_size)
    return pl.pallas_call(
        kernel,
        grid=(batch, tiles_h, tiles_w),
        in_specs=[pl.BlockSpec(memory_space=pl.ANY)] * 3
        + [pl.BlockSpec((lanes,), lambda b, i, j: (0,))] * 2,
        out_specs=[pl.BlockSpec((None, None, None, d, lanes), lambda b, i, j: (b, i, j, 0, 0)),
                   pixels, pixels],
        out_shape=[
            jax.ShapeDtypeStruct((batch, tiles_h, tiles_w, d, lanes), jnp.float32),
            jax.ShapeDtypeStruct((batch, tiles_h, tiles_w, lanes), jnp.float32),
            jax.ShapeDtypeStruct((batch, tiles_h, tiles_w, lanes), jnp.int32),
        ],
        interpret=interpret,
        compiler_params=params_for_compiler,
        name="rasterize_fwd",
    )(offsets, gids, params, *common.lane_centres(tile_size))


def rasterize_fwd_pallas(means2d, conics, opacities, colors, background, isect_gids,
                         tile_offsets, *, width: int, height: int, tile_size: int,
                         interpret: bool = False, backend: common.Backend = "triton",
                         chunk_size: int = 32, num_warps: int | None = None,
                         num_stages: int | None = None):
    """Front-to-back compositing with the Pallas kernel; same contract as ``rasterize_fwd_xla``.

    Args:
      means2d: (N, 2) projected centres in pixels.
      conics: (N, 3) ``(a, b, c)`` of the inverse blurred 2D covariance.
      opacities: (N,).
      colors: (N, D), any D >= 1.
      background: (D,).
      isect_gids: (E,) int Gaussian ids sorted by (tile, depth, gid); entries at or after
        ``tile_offsets[-1]`` are padding.
      tile_offsets: (n_tiles + 1,) int, tile ``t``'s list is ``isect_gids[off[t]:off[t+1]]``,
        tiles row-major, ``n_tiles = ceil(H / tile_size) * ceil(W / tile_size)``.
      width, height, tile_size: image and tile size in pixels (tile_size 8, 16 or 32).
      interpret: run the kernel with ``interpret=True`` (the only way on CPU).
      backend: GPU lowering, ``"mosaic_gpu"`` (Hopper+) or ``"triton"`` (Ampere/Ada).
      chunk_size: tile-list entries between two "all pixels done" checks.
      num_warps, num_stages: Triton launch settings (None: 8 warps for 16x16 tiles, 1 stage).

    Returns:
      ``out`` (H, W, D) = C + T_final bg, ``T_final`` (H, W), ``n_contrib`` (H, W) int32.
    """
    tiles_h, tiles_w, d = common.check_inputs(
        means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
        width=width, height=height, tile_size=tile_size)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"{chunk_size=} must be a positive int")
    kernel_call = functools.partial(
        _fwd_call, width=width, height=height, tile_size=tile_size, tiles_h=tiles_h,
        tiles_w=tiles_w, num_channels=d, chunk_size=chunk_size, interpret=interpret,
        params_for_compiler=common.compiler_params(backend, tile_size, num_warps, num_stages))
    color, t_final, n_contrib = common.batched_kernel(kernel_call)(
        tile_offsets.astype(jnp.int32), common.nonempty_gids(isect_gids),
        common.pack_params(means2d, conics, opacities, colors))
    t_final = common.from_tiles(t_final, height, width, tile_size)
    out = common.from_tiles(color, height, width, tile_size) + t_final[..., None] * background
    return out, t_final, common.from_tiles(n_contrib, height, width, tile_size)
