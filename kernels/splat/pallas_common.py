"""What the Pallas forward and backward splatting kernels share: constants, checks, layouts.

Both kernels run one program per screen tile (16x16 by default) and image of a batch (grid
``(batch, tiles_h, tiles_w)``, see ``batched_kernel``) and keep the tile's pixels as one flat
vector of ``tile_size**2`` lanes, so every per-pixel quantity lives in registers (Triton: one
tensor, one pixel per thread at 16x16; Mosaic GPU: a strided fragmented array over the
warpgroup).

Data layout at the kernel boundary (all built by plain XLA outside the kernels):

* ``params``  (N + 1, 6 + D) float32, one row per Gaussian ``[mx, my, a, b, c, o, c_0 .. c_{D-1}]``
  (mean in pixels, conic, opacity, colour). The extra last row is zeros, so that the array is never
  empty. The kernels read one row per tile-list entry through ``isect_gids``: every lane of a
  program reads the same address, so these are scalar (broadcast) loads served by the L1 cache,
  which is what gsplat's shared-memory batch buys on CUDA. Channels are kept as D separate lane
  vectors (a static Python loop), so no tensor inside a kernel has a D-sized axis: Triton's
  power-of-two rule then only concerns the lane count, and D needs no padding.
* per-pixel inputs and outputs are tile-major: ``(B, tiles_h, tiles_w, tile_size**2)`` and, for
  channels, ``(B, tiles_h, tiles_w, D, tile_size**2)`` (B the batch, 1 without vmap);
  ``to_tiles`` / ``from_tiles`` convert one image to and from ``(H, W[, D])``. Lanes beyond
  ``H`` x ``W`` in the last tile row/column are padding: done from the start in the forward,
  ``n_contrib = 0`` in the backward, cropped from the outputs.

Constants are gsplat 1.5.3's (``gsplat/cuda/include/Common.h`` and
``csrc/RasterizeToPixels3DGSFwd.cu``; reference/splatting.md §1.3).
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp

from vasa3d_jax.constants import ALPHA_THRESHOLD, MAX_ALPHA, TRANSMITTANCE_THRESHOLD

Backend = Literal["mosaic_gpu", "triton"]
BACKENDS: tuple[str, ...] = ("mosaic_gpu", "triton")

# Per-pixel counts ride in float32 registers (Mosaic GPU loses integer signedness through loop
# carries), exact for integers up to 2^24.
MAX_LIST_LENGTH = 2**24
PARAM_COLUMNS = 6  # leading columns of a params row: mx, my, a, b, c, o
# Triton programs over a 16x16 tile: 256 lanes = 8 warps x 32 threads, one pixel per thread,
# the block shape gsplat launches (tile_size x tile_size threads).
_TRITON_NUM_WARPS = {8: 2, 16: 8, 32: 8}


def check_inputs(means2d, conics, opacities, colors, background, isect_gids, tile_offsets, *,
                 width: int, height: int, tile_size: int) -> tuple[int, int, int]:
    """Validates the compositing inputs; returns ``(tiles_h, tiles_w, num_channels)``.

    Raises ``ValueError`` naming the offending argument before any kernel is built.
    """
    if not isinstance(width, int) or width <= 0:
        raise ValueError(f"{width=} must be a positive int (image width in pixels)")
    if not isinstance(height, int) or height <= 0:
        raise ValueError(f"{height=} must be a positive int (image height in pixels)")
    if tile_size not in _TRITON_NUM_WARPS:
        raise ValueError(
            f"{tile_size=} must be one of {sorted(_TRITON_NUM_WARPS)}: the Pallas kernels keep a "
            "tile's pixels in one power-of-two vector (Triton needs power-of-two shapes); use "
            "tile_size=16 (gsplat's default) or implementation='xla'")
    n = means2d.shape[0] if means2d.ndim == 2 else -1
    if means2d.ndim != 2 or means2d.shape[1] != 2:
        raise ValueError(f"{means2d.shape=} must be (N, 2): projected centres in pixels")
    if conics.shape != (n, 3):
        raise ValueError(f"{conics.shape=} must be (N, 3) = ({n}, 3): (a, b, c) of the inverse "
                         "2D covariance")
    if opacities.shape != (n,):
        raise ValueError(f"{opacities.shape=} must be (N,) = ({n},)")
    if colors.ndim != 2 or colors.shape[0] != n or colors.shape[1] < 1:
        raise ValueError(f"{colors.shape=} must be (N, D) with N = {n} and D >= 1")
    d = colors.shape[1]
    if background.shape != (d,):
        raise ValueError(f"{background.shape=} must be (D,) = ({d},), one value per channel")
    if isect_gids.ndim != 1 or not jnp.issubdtype(isect_gids.dtype, jnp.integer):
        raise ValueError(f"{isect_gids.shape=} {isect_gids.dtype=} must be a 1-D integer array "
                         "of Gaussian ids sorted by (tile, depth, gid)")
    if isect_gids.shape[0] > MAX_LIST_LENGTH:
        raise ValueError(f"{isect_gids.shape=}: at most {MAX_LIST_LENGTH} tile-list entries (the "
                         "kernels count entries in float32 registers); split the batch")
    tiles_h, tiles_w = -(-height // tile_size), -(-width // tile_size)
    if tile_offsets.shape != (tiles_h * tiles_w + 1,) or not jnp.issubdtype(
            tile_offsets.dtype, jnp.integer):
        raise ValueError(
            f"{tile_offsets.shape=} {tile_offsets.dtype=} must be integer (n_tiles + 1,) = "
            f"({tiles_h * tiles_w + 1},) for a {height}x{width} image with {tile_size=}")
    for name, x in (("means2d", means2d), ("conics", conics), ("opacities", opacities),
                    ("colors", colors), ("background", background)):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"{name}.dtype={x.dtype} must be floating point")
    return tiles_h, tiles_w, d


def pack_params(means2d, conics, opacities, colors) -> jax.Array:
    """Rows ``[mx, my, a, b, c, o, colours...]`` plus one zero row: (N + 1, 6 + D) float32."""
    rows = jnp.concatenate(
        [means2d, conics, opacities[:, None], colors], axis=1).astype(jnp.float32)
    return jnp.pad(rows, ((0, 1), (0, 0)))


def nonempty_gids(isect_gids: jax.Array) -> jax.Array:
    """The tile list as int32, padded to length >= 1 (a kernel ref must not be empty)."""
    gids = isect_gids.astype(jnp.int32)
    return gids if gids.shape[0] else jnp.zeros((1,), jnp.int32)


def to_tiles(image: jax.Array, tiles_h: int, tiles_w: int, tile_size: int) -> jax.Array:
    """(H, W[, D]) -> (tiles_h, tiles_w[, D], tile_size**2), zero padded to whole tiles."""
    h, w = image.shape[:2]
    pad = ((0, tiles_h * tile_size - h), (0, tiles_w * tile_size - w)) + ((0, 0),) * (
        image.ndim - 2)
    x = jnp.pad(image, pad)
    x = x.reshape((tiles_h, tile_size, tiles_w, tile_size) + image.shape[2:])
    if image.ndim == 2:
        return x.transpose(0, 2, 1, 3).reshape(tiles_h, tiles_w, tile_size * tile_size)
    return x.transpose(0, 2, 4, 1, 3).reshape(tiles_h, tiles_w, image.shape[2],
                                              tile_size * tile_size)


def from_tiles(tiles: jax.Array, height: int, width: int, tile_size: int) -> jax.Array:
    """Inverse of ``to_tiles``: (tiles_h, tiles_w[, D], tile_size**2) -> (H, W[, D])."""
    th, tw = tiles.shape[:2]
    if tiles.ndim == 3:
        x = tiles.reshape(th, tw, tile_size, tile_size).transpose(0, 2, 1, 3)
        return x.reshape(th * tile_size, tw * tile_size)[:height, :width]
    d = tiles.shape[2]
    x = tiles.reshape(th, tw, d, tile_size, tile_size).transpose(0, 3, 1, 4, 2)
    return x.reshape(th * tile_size, tw * tile_size, d)[:height, :width]


def lane_centres(tile_size: int) -> tuple[jax.Array, jax.Array]:
    """Pixel centre of each lane within its tile, +0.5 as gsplat: two (tile_size**2,) float32.

    Lane ``l`` is row ``l // tile_size``, column ``l % tile_size``. Passed to the kernels as
    inputs rather than built there with ``iota``, because Mosaic GPU cannot infer a register
    layout for an ``iota`` without its own ``plgpu.layout_cast`` (not a generic primitive).
    """
    lane = jnp.arange(tile_size * tile_size, dtype=jnp.int32)
    return ((lane % tile_size).astype(jnp.float32) + 0.5,
            (lane // tile_size).astype(jnp.float32) + 0.5)


def filled(lane_vec: jax.Array, value: float) -> jax.Array:
    """A float32 per-pixel vector of ``value``, computed from a loaded (finite) lane vector.

    Mosaic GPU gives a constant (``jnp.full``) a splat register layout, which it can neither
    reduce nor carry through a loop next to strided values; deriving the vector from a loaded one
    gives it the loaded vector's strided layout. On Triton and in interpret mode it costs one
    multiply-add per lane, once per program.
    """
    return lane_vec * 0.0 + value


def batched_kernel(call: Callable[..., Any]) -> Callable[..., Any]:
    """An unbatched function from a kernel call over a leading batch axis, vmap folded in.

    ``call(*arrays)`` takes arrays with a leading batch axis B and runs one ``pallas_call`` with a
    ``(B, tiles_h, tiles_w)`` grid. The returned function takes the arrays without that axis. Under
    ``jax.vmap`` (nested any number of times) the vmapped axes are merged into the kernel's batch
    axis through ``jax.custom_batching.custom_vmap`` instead of Pallas' own batching rule, which
    Mosaic GPU does not implement (its lowering asserts ``not grid_mapping.vmapped_dims``). One
    launch then renders every camera and Gaussian set of the batch.
    """

    @jax.custom_batching.custom_vmap
    def batched(*args):
        return call(*args)

    @batched.def_vmap
    def merge_axes(axis_size, in_batched, *args):
        # a new vmapped axis 0 in front of the kernel batch axis (now 1): fold them into one
        batch = next(a.shape[1] for a, b in zip(args, in_batched) if b)
        flat = [(a if b else jnp.broadcast_to(a, (axis_size,) + a.shape)).reshape(
            (axis_size * batch,) + a.shape[1 + b:]) for a, b in zip(args, in_batched)]
        outs = jax.tree.map(lambda o: o.reshape((axis_size, batch) + o.shape[1:]),
                            batched(*flat))
        return outs, jax.tree.map(lambda _: True, outs)

    @jax.custom_batching.custom_vmap
    def single(*args):
        return jax.tree.map(lambda o: o[0], call(*(a[None] for a in args)))

    @single.def_vmap
    def first_axis(axis_size, in_batched, *args):
        outs = batched(*(a if b else jnp.broadcast_to(a, (axis_size,) + a.shape)
                         for a, b in zip(args, in_batched)))
        return outs, jax.tree.map(lambda _: True, outs)

    return single


def compiler_params(backend: str, tile_size: int, num_warps: int | None,
                    num_stages: int | None):
    """``compiler_params`` for ``pl.pallas_call`` that select the GPU backend.

    Mosaic GPU (Hopper and newer): ``jax.experimental.pallas.mosaic_gpu.CompilerParams``. Triton
    (Ampere/Ada; deprecated after JAX 0.10): ``jax.experimental.pallas.triton.CompilerParams``
    with one pixel per thread by default and one pipeline stage (the loops carry a sequential
    dependency through the transmittance, nothing to software-pipeline).
    """
    if backend == "triton":
        from jax.experimental.pallas import triton as pltriton
        return pltriton.CompilerParams(
            num_warps=num_warps if num_warps is not None else _TRITON_NUM_WARPS[tile_size],
            num_stages=num_stages if num_stages is not None else 1)
    if backend == "mosaic_gpu":
        try:
            from jax.experimental.pallas import mosaic_gpu as plgpu
        except ImportError as e:  # the module imports absl
            raise ImportError("the Mosaic GPU Pallas backend needs absl-py: "
                              "pip install absl-py") from e
        if num_warps is not None or num_stages is not None:
            raise ValueError(f"{num_warps=} and {num_stages=} are Triton settings; Mosaic GPU "
                             "runs one warpgroup per program (leave them None)")
        return plgpu.CompilerParams(dimension_semantics=("parallel",) * 3)
    raise ValueError(f"{backend=} must be one of {BACKENDS}")
