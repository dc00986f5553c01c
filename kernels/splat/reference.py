"""The obviously correct reference of this kernel folder: dense compositing.

Every Gaussian is evaluated at every pixel and composited front to back with one ``lax.scan``,
straight from gsplat 1.5.3's formulas (``reference/splatting.md`` section 1.3 item 8), with no
tiles, capacities or chunks:

    (1) sigma = 0.5 (a d_x^2 + c d_y^2) + b d_x d_y,   d = mu2d - (j + 0.5, i + 0.5)
    (2) alpha = min(0.999, o exp(-sigma));  skip if sigma < 0 or alpha < 1/255
    (3) T' = T (1 - alpha);  if T' <= 1e-4 the pixel stops and this Gaussian is excluded;
        else C += c alpha T,  T = T'
    (4) out = C + T bg,  alpha = 1 - T

for any number D of channels c. The fast paths of this folder, ``xla.py`` (the default) and
``pallas_fwd.py`` / ``pallas_bwd.py``, are tested against it directly (``tests/kernels``) and, with
the renderer's projection in front (``vasa3d_jax.render.dense``), through ``render`` and
``render_features`` (``tests/render``). Gradients come from plain autodiff through the scan (the
alpha clamp's ``minimum`` gives the same gating as gsplat's backward). It computes in the dtype of
its inputs, so it runs in float64 under ``jax.experimental.enable_x64`` for finite-difference
checks. Cost O(N H W): tests only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vasa3d_jax.constants import ALPHA_THRESHOLD, MAX_ALPHA, TRANSMITTANCE_THRESHOLD



def composite_ref(means2d, conics, opacities, colors, depths, visible, background, *, width: int, height: int):
    """Equations (1)-(4) for every pixel. means2d (N, 2), conics (N, 3), opacities (N,), colors (N, D),
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
