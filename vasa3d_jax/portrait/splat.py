"""Multi-channel splatting: the renderer's stages (projection, binning, compositing) for any number
of per-Gaussian channels, as the portrait model needs (photo coordinates, confidence, fill colour,
depth) where ``render.render`` composites RGB only.

For every pixel the compositor returns, with front-to-back weights w_i = alpha_i prod_{j<i} (1 - alpha_j)
(render/api.py eqs. 1-4, gsplat 1.5.3 semantics):

    (1) out = sum_i w_i f_i + (1 - A) bg,    A = sum_i w_i     (f_i the Gaussian's D channels)

so a channel divided by A is the weight-averaged value of the surface seen at that pixel.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vasa3d_jax.kernels.splat import rasterize
from vasa3d_jax.kernels.splat.config import default_config
from vasa3d_jax.render import binning, projection


def implementation() -> str:
    return "pallas" if jax.default_backend() == "gpu" else "xla"


def splat_channels(means, quats, scales, opacities, feats, viewmat, K, *, width: int, height: int,
                   capacity: int, background=None):
    """Eq. 1 for one camera: Gaussians (N, ...) with channels ``feats (N, D)`` ->
    (out (H, W, D), alpha (H, W), isect_overflow (), num_isects ()). Differentiable, jittable."""
    impl = implementation()
    config = default_config(impl)
    p = projection.project(means, quats, scales, opacities, viewmat, K, width=width, height=height)
    bg = jnp.zeros((feats.shape[-1],), feats.dtype) if background is None else background
    bins = binning.bin_gaussians(p.means2d, p.radii, p.depths, p.conics, p.opacities, width=width,
                                 height=height, tile_size=config.tile_size, capacity=capacity)
    out, alpha, _ = rasterize(p.means2d, p.conics, p.opacities, feats, bg, bins.isect_gids,
                              bins.tile_offsets, width=width, height=height,
                              tile_size=config.tile_size, implementation=impl, config=config,
                              with_n_contrib=False)
    return out, alpha, bins.isect_overflow, bins.num_isects


def count_isects(means, quats, scales, opacities, viewmat, K, *, width: int, height: int):
    """(Gaussian, binning tile) pairs one camera needs: the capacity ``splat_channels`` must get."""
    config = default_config(implementation())
    p = projection.project(means, quats, scales, opacities, viewmat, K, width=width, height=height)
    c = binning.count_isects(p.means2d, p.radii, width=width, height=height,
                             tile_size=config.tile_size)
    return jnp.sum(c)
