"""Dense reference renderer: every Gaussian at every pixel, straight from the formulas.

The test oracle for ``render``. No tiles, no capacities, no chunking: the visible Gaussians are
sorted by (camera z, index) and composited front to back at every pixel with one ``lax.scan``,
following gsplat 1.5.3 (``reference/splatting.md`` section 1.3 item 8) literally:

    (1) sigma = 0.5 (a d_x^2 + c d_y^2) + b d_x d_y,   d = mu2d - (j + 0.5, i + 0.5)
    (2) alpha = min(0.999, o exp(-sigma));  skip if sigma < 0 or alpha < 1/255
    (3) T' = T (1 - alpha);  if T' <= 1e-4 the pixel stops and this Gaussian is excluded;
        else C += c alpha T,  T = T'
    (4) out = C + T bg,  alpha = 1 - T,  depth = sum(alpha_i T_i z_i) / max(alpha, 1e-10)

Gradients come from plain autodiff through the scan (the alpha clamp's ``minimum`` gives the same
gating as gsplat's backward). It computes in the dtype of its inputs, so it runs in float64 under
``jax.experimental.enable_x64`` for finite-difference checks. Cost O(N H W): tests only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vasa3d_jax.constants import ALPHA_THRESHOLD, MAX_ALPHA
from vasa3d_jax.render import projection, sh
from vasa3d_jax.render.types import Camera, Gaussians

TRANSMITTANCE_THRESHOLD = 1e-4  # gsplat 1.5.3 early-stop transmittance
DEPTH_ALPHA_MIN = 1e-10  # gsplat 1.5.3 render_mode "ED"


def dense_composite(means2d, conics, opacities, colors, depths, visible, background, *, width: int, height: int):
    """Equations (1)-(3) for every pixel. means2d (N, 2), conics (N, 3), opacities (N,), colors (N, D),
    depths (N,) (sort key), visible (N,) bool, background (D,). Returns out (H, W, D), alpha (H, W)."""
    dtype = colors.dtype
    order = jnp.argsort(jnp.where(visible, depths, jnp.inf), stable=True)
    xs = jnp.arange(width, dtype=dtype) + 0.5
    ys = jnp.arange(height, dtype=dtype) + 0.5
    px, py = jnp.meshgrid(xs, ys)  # (H, W)

    def step(state, i):
        t, c, done = state
        dx = means2d[i, 0] - px
        dy = means2d[i, 1] - py
        sigma = 0.5 * (conics[i, 0] * dx * dx + conics[i, 2] * dy * dy) + conics[i, 1] * dx * dy
        alpha = jnp.minimum(MAX_ALPHA, opacities[i] * jnp.exp(-sigma))
        use = visible[i] & ~done & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
        t_next = t * (1.0 - alpha)
        stop = use & (t_next <= TRANSMITTANCE_THRESHOLD)
        add = use & ~stop
        c = c + jnp.where(add[..., None], (alpha * t)[..., None] * colors[i], 0.0)
        t = jnp.where(add, t_next, t)
        return (t, c, done | stop), None

    init = (jnp.ones((height, width), dtype), jnp.zeros((height, width, colors.shape[1]), dtype),
            jnp.zeros((height, width), bool))
    (t, c, _), _ = jax.lax.scan(step, init, order)
    return c + t[..., None] * background, 1.0 - t


def dense_render(gaussians: Gaussians, camera: Camera, background=None, *, antialiased: bool = False,
                 means2d_offset=None):
    """Reference render of one Gaussian set from one camera (no batch dims).

    Returns (rgb (H, W, 3), alpha (H, W), depth (H, W)), equations (1)-(4) with the projection and
    colours of ``projection.project`` and ``sh.sh_to_color``.
    """
    g, cam = gaussians, camera
    dtype = g.means.dtype
    background = jnp.zeros(3, dtype) if background is None else jnp.asarray(background, dtype)
    p = projection.project(g.means, g.quats, g.scales, g.opacities, cam.viewmat, cam.K, width=cam.width,
                           height=cam.height, near=cam.near, far=cam.far, antialiased=antialiased)
    colors = g.colors if g.colors.ndim == 2 else sh.sh_to_color(g.colors, g.means, projection.camera_center(cam.viewmat))
    feats = jnp.concatenate([colors, p.depths[:, None]], axis=-1)
    bg = jnp.concatenate([background, jnp.zeros((1,), dtype)])
    means2d = p.means2d if means2d_offset is None else p.means2d + means2d_offset
    out, alpha = dense_composite(means2d, p.conics, p.opacities, feats, p.depths, p.visible, bg,
                                 width=cam.width, height=cam.height)
    return out[..., :3], alpha, out[..., 3] / jnp.maximum(alpha, DEPTH_ALPHA_MIN)
