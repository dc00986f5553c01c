"""Surface samples of a head mesh: where the portrait's texture lives, and the flat Gaussians that
splat it (primitives of ``model.py``, ``texture.py`` and ``synth.py``; they import this module, it
imports none of them).

A sample is (parent triangle f, barycentric b): on every triangle the centroids of the L_f^2
sub-triangles of its L_f-fold subdivision (a regular barycentric grid), so it rides on the mesh. At
any posed vertices V its position is

    (1) X_s = sum_k b_sk V[faces[parent_s, k]]

and as a Gaussian it is flat and nearly opaque (the template avatar's shape): in-plane std
PLANE_SCALE k_f / L_f, normal std NORMAL_SCALE k_f / L_f, k_f the triangle's scale
(``avatar.binding.triangle_frames``, binding local axis 1 = the normal), so the samples close the
surface with overlap and stay sharp.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from vasa3d_jax.avatar import binding as bnd
from vasa3d_jax.render import Gaussians

PLANE_SCALE = 0.5
NORMAL_SCALE = 0.1
SURFACE_OPACITY = 0.98


def barycentric_grid(level: int) -> np.ndarray:
    """(L^2, 3) barycentric centroids of the sub-triangles of a triangle's L-fold subdivision."""
    pts = []
    for i in range(level):
        for j in range(level - i):
            pts.append(((i + 1 / 3) / level, (j + 1 / 3) / level))  # upward sub-triangle
            if i + j <= level - 2:
                pts.append(((i + 2 / 3) / level, (j + 2 / 3) / level))  # downward one
    uv = np.asarray(pts)
    return np.stack([1 - uv.sum(1), uv[:, 0], uv[:, 1]], 1)


def layout_samples(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-triangle subdivision levels (F,) -> (parent (P,), bary (P, 3), level (P,))."""
    parents, barys, lv = [], [], []
    for level in np.unique(levels):
        tris = np.where(levels == level)[0]
        grid = barycentric_grid(int(level))
        parents.append(np.repeat(tris, len(grid)))
        barys.append(np.tile(grid, (len(tris), 1)))
        lv.append(np.full(len(tris) * len(grid), float(level)))
    order = np.argsort(np.concatenate(parents), kind="stable")
    return (np.concatenate(parents)[order].astype(np.int32),
            np.concatenate(barys)[order].astype(np.float32),
            np.concatenate(lv)[order].astype(np.float32))


def sample_gaussians(faces, parent, bary, level, verts, opacity: float = SURFACE_OPACITY) -> Gaussians:
    """Flat Gaussians at the samples of a posed mesh ``verts (V, 3)`` (eq. 1): their geometry, for
    ``render_features`` (``colors`` None)."""
    frames = bnd.triangle_frames(verts, faces)
    tri = verts[faces[parent]]
    means = jnp.einsum("pk,pkc->pc", bary, tri)
    k = frames.scales[parent] / level
    scales = k[:, None] * jnp.asarray([PLANE_SCALE, NORMAL_SCALE, PLANE_SCALE], verts.dtype)
    opacities = jnp.full(parent.shape, opacity, verts.dtype)
    return Gaussians(means=means, quats=frames.quats[parent], scales=scales, opacities=opacities, colors=None)


def bilinear(image, xy):
    """Sample ``image (H, W, C)`` at pixel positions ``xy (..., 2)`` (centres at +0.5), clamped."""
    h, w = image.shape[:2]
    x = jnp.clip(xy[..., 0] - 0.5, 0.0, w - 1.0)
    y = jnp.clip(xy[..., 1] - 0.5, 0.0, h - 1.0)
    x0 = jnp.clip(jnp.floor(x).astype(jnp.int32), 0, w - 2)
    y0 = jnp.clip(jnp.floor(y).astype(jnp.int32), 0, h - 2)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    a, b = image[y0, x0], image[y0, x0 + 1]
    c, d = image[y0 + 1, x0], image[y0 + 1, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
