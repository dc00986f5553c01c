"""Dense reference renderer: the renderer's projection and colours in front of the kernel folder's
dense oracle (``vasa3d_jax.kernels.splat.reference.composite_ref``: every Gaussian at every pixel).

The test oracle for ``render`` and ``render_features`` (``api.py`` equations (1), (3)-(5)): no tiles,
no capacities, no chunking. The visible Gaussians are sorted by (camera z, index) and composited
front to back at every pixel with [features, camera z] as channels, then

    depth = sum(w_i z_i) / max(alpha, 1e-10)

Gradients come from plain autodiff. It computes in the dtype of its inputs, so it runs in float64
under ``jax.experimental.enable_x64`` for finite-difference checks. Cost O(N H W): tests only.
"""

from __future__ import annotations

import jax.numpy as jnp

from vasa3d_jax.kernels.splat.reference import composite_ref
from vasa3d_jax.render import projection, sh
from vasa3d_jax.render.api import DEPTH_ALPHA_MIN
from vasa3d_jax.render.types import Camera, Gaussians


def dense_render_features(gaussians: Gaussians, features, camera: Camera, background=None, *,
                          antialiased: bool = False, means2d_offset=None):
    """Reference ``render_features`` of one Gaussian set from one camera (no batch dims).

    features (N, D); background (D,) (default zeros). Returns (features (H, W, D), alpha (H, W),
    depth (H, W)). ``gaussians.colors`` is not used.
    """
    g, cam = gaussians, camera
    dtype = g.means.dtype
    features = jnp.asarray(features, dtype)
    d = features.shape[-1]
    background = jnp.zeros(d, dtype) if background is None else jnp.asarray(background, dtype)
    p = projection.project(g.means, g.quats, g.scales, g.opacities, cam.viewmat, cam.K, width=cam.width,
                           height=cam.height, near=cam.near, far=cam.far, antialiased=antialiased)
    feats = jnp.concatenate([features, p.depths[:, None]], axis=-1)
    bg = jnp.concatenate([background, jnp.zeros((1,), dtype)])
    means2d = p.means2d if means2d_offset is None else p.means2d + means2d_offset
    out, alpha = composite_ref(means2d, p.conics, p.opacities, feats, p.depths, p.visible, bg,
                               width=cam.width, height=cam.height)
    return out[..., :d], alpha, out[..., d] / jnp.maximum(alpha, DEPTH_ALPHA_MIN)


def dense_render(gaussians: Gaussians, camera: Camera, background=None, *, antialiased: bool = False,
                 means2d_offset=None):
    """Reference ``render`` of one Gaussian set from one camera (no batch dims): colours by
    ``sh.sh_to_color`` when SH, then ``dense_render_features``. Returns (rgb (H, W, 3), alpha, depth)."""
    g = gaussians
    colors = g.colors if g.colors.ndim == 2 else sh.sh_to_color(g.colors, g.means, projection.camera_center(camera.viewmat))
    return dense_render_features(g, colors, camera, background, antialiased=antialiased,
                                 means2d_offset=means2d_offset)
