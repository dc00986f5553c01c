"""Data that crosses the renderer's boundary: Gaussians, cameras and what a render returns.

Conventions (DESIGN.md): metres; OpenCV camera (x right, y down, z forward); ``viewmat`` is the
world->camera 4x4; ``K`` in pixels with pixel centres at +0.5 (as gsplat 1.5.3). Gaussians have the
meaning of gsplat's ``rasterization()`` arguments: activated scales and opacities, wxyz quaternions
that need not be normalised.

All are registered dataclasses (pytrees), so they pass through ``jit``, ``vmap`` and ``grad``.
Leading batch dimensions are allowed on every array field; the renderer vmaps over them.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Gaussians:
    """A set of 3D Gaussians.

    means:     (..., N, 3) float32, world position in metres
    quats:     (..., N, 4) float32, rotation quaternion wxyz (normalised inside the renderer)
    scales:    (..., N, 3) float32, standard deviations along the local axes, metres (linear, not log)
    opacities: (..., N)    float32, in [0, 1]
    colors:    (..., N, 3) RGB in [0, 1], or (..., N, K, 3) real SH coefficients with
               K = (degree + 1)^2, degree 0..3 (colour = max(SH(dir) + 0.5, 0), as gsplat);
               None for geometry alone (``render_features`` takes its features separately)
    """

    means: jax.Array
    quats: jax.Array
    scales: jax.Array
    opacities: jax.Array
    colors: jax.Array

    @property
    def num(self) -> int:
        return self.means.shape[-2]

    @property
    def sh_degree(self) -> int | None:
        """None for plain RGB colours (or none), else the SH degree implied by the coefficient count."""
        if self.colors is None or self.colors.ndim == self.means.ndim:
            return None
        k = self.colors.shape[-2]
        degree = int(round(k ** 0.5)) - 1
        if (degree + 1) ** 2 != k or not 0 <= degree <= 3:
            raise ValueError(f"SH colours need K=(d+1)^2 coefficients with d in 0..3; got K={k}")
        return degree

    def replace(self, **kw) -> "Gaussians":
        return dataclasses.replace(self, **kw)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Camera:
    """A pinhole camera.

    viewmat: (..., 4, 4) float32, world -> camera (OpenCV axes)
    K:       (..., 3, 3) float32, intrinsics in pixels (pixel centres at +0.5)
    width, height: image size in pixels (static)
    near, far: clipping planes on camera z, metres (static; gsplat defaults)
    """

    viewmat: jax.Array
    K: jax.Array
    width: int = dataclasses.field(metadata=dict(static=True))
    height: int = dataclasses.field(metadata=dict(static=True))
    near: float = dataclasses.field(default=0.01, metadata=dict(static=True))
    far: float = dataclasses.field(default=1e10, metadata=dict(static=True))

    def replace(self, **kw) -> "Camera":
        return dataclasses.replace(self, **kw)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FeatureOutput:
    """What ``render_features`` returns (leading batch dimensions follow the inputs).

    features: (..., H, W, D) float32, composited features over the background: sum_i w_i f_i + T bg
    alpha:    (..., H, W)    float32, 1 - final transmittance = sum_i w_i
    depth:    (..., H, W)    float32, expected camera z: sum(w_i z_i) / max(alpha, 1e-10)
    radii, means2d, num_visible, num_isects, isect_overflow, max_tile_count: as ``RenderOutput``
    """

    features: jax.Array
    alpha: jax.Array
    depth: jax.Array
    radii: jax.Array
    means2d: jax.Array
    num_visible: jax.Array
    num_isects: jax.Array
    isect_overflow: jax.Array
    max_tile_count: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RenderOutput:
    """What ``render`` returns (leading batch dimensions follow the inputs): a ``FeatureOutput`` whose
    features are the colours.

    rgb:   (..., H, W, 3) float32, composited colour over the background
    alpha: (..., H, W)    float32, 1 - final transmittance
    depth: (..., H, W)    float32, expected camera z: sum(w_i z_i) / max(alpha, 1e-10)
    radii:   (..., N, 2) int32, per-axis screen radius in pixels (0 = culled)
    means2d: (..., N, 2) float32, projected centres in pixels (its gradient drives densification)
    num_visible:   (...) int32, Gaussians that survived culling
    num_isects:    (...) int32, (Gaussian, binning tile) pairs the scene needs (the capacity it needs)
    isect_overflow:(...) int32, pairs dropped because the capacity was too small (0 = exact image)
    max_tile_count:(...) int32, most Gaussians whose box touches one (compositing) tile
    """

    rgb: jax.Array
    alpha: jax.Array
    depth: jax.Array
    radii: jax.Array
    means2d: jax.Array
    num_visible: jax.Array
    num_isects: jax.Array
    isect_overflow: jax.Array
    max_tile_count: jax.Array
