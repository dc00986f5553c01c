"""Structural similarity (Wang et al., IEEE TIP 2004) as the 3D Gaussian Splatting code computes it
(graphdeco-inria/gaussian-splatting ``utils/loss_utils.py``), and its loss D-SSIM = 1 - SSIM.

Local statistics come from an 11×11 Gaussian window G (σ = 1.5) applied per channel with zero
padding, so the map keeps the image size:

    (1)  μ_x = G * x,   σ_x² = G * x² - μ_x²,   σ_xy = G * (x·y) - μ_x μ_y
    (2)  SSIM(x, y) = (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2))
    (3)  C1 = (0.01 L)², C2 = (0.03 L)², L = 1 (the dynamic range of images in [0, 1])
    (4)  D-SSIM(x, y) = 1 - mean_{h,w,c} SSIM(x, y)

The 2D window is separable, G = g gᵀ, so it runs as two 1D passes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

WINDOW = 11  # Wang et al. 2004 §III.C; 3DGS loss_utils.ssim(window_size=11)
SIGMA = 1.5  # same sources
C1 = 0.01 ** 2  # (3), K1 = 0.01
C2 = 0.03 ** 2  # (3), K2 = 0.03


def gaussian_window(size: int = WINDOW, sigma: float = SIGMA) -> np.ndarray:
    """The normalised 1D Gaussian g (size,) whose outer product is the SSIM window."""
    x = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return (g / g.sum()).astype(np.float32)


def _blur(x: jax.Array) -> jax.Array:
    """G * x for x (B, H, W, C): separable Gaussian window, zero padding, output (B, H, W, C)."""
    b, h, w, c = x.shape
    g = jnp.asarray(gaussian_window())
    planes = jnp.moveaxis(x, -1, 1).reshape(b * c, 1, h, w)
    pad = WINDOW // 2
    dims = ("NCHW", "OIHW", "NCHW")
    planes = jax.lax.conv_general_dilated(planes, g.reshape(1, 1, WINDOW, 1), (1, 1),
                                          ((pad, pad), (0, 0)), dimension_numbers=dims)
    planes = jax.lax.conv_general_dilated(planes, g.reshape(1, 1, 1, WINDOW), (1, 1),
                                          ((0, 0), (pad, pad)), dimension_numbers=dims)
    return jnp.moveaxis(planes.reshape(b, c, h, w), 1, -1)


def ssim_map(x: jax.Array, y: jax.Array) -> jax.Array:
    """Per-pixel SSIM (2) of images in [0, 1]: (..., H, W, C) twice -> (..., H, W, C)."""
    if x.shape != y.shape:
        raise ValueError(f"SSIM compares images of one shape; got {x.shape} and {y.shape}")
    if x.ndim < 3:
        raise ValueError(f"SSIM takes (..., H, W, C) images; got shape {x.shape}")
    lead, (h, w, c) = x.shape[:-3], x.shape[-3:]
    x = x.reshape((-1, h, w, c)).astype(jnp.float32)
    y = y.reshape((-1, h, w, c)).astype(jnp.float32)
    n = x.shape[0]
    stats = _blur(jnp.concatenate([x, y, x * x, y * y, x * y]))  # (1), one pass for all five
    mu_x, mu_y, xx, yy, xy = (stats[i * n:(i + 1) * n] for i in range(5))
    var_x = xx - mu_x ** 2
    var_y = yy - mu_y ** 2
    cov = xy - mu_x * mu_y
    num = (2.0 * mu_x * mu_y + C1) * (2.0 * cov + C2)
    den = (mu_x ** 2 + mu_y ** 2 + C1) * (var_x + var_y + C2)
    return (num / den).reshape(lead + (h, w, c))


def ssim(x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean SSIM per image: (..., H, W, C) twice -> (...)."""
    return jnp.mean(ssim_map(x, y), axis=(-3, -2, -1))


def d_ssim(x: jax.Array, y: jax.Array) -> jax.Array:
    """D-SSIM loss (4) per image: 1 - SSIM, (..., H, W, C) twice -> (...)."""
    return 1.0 - ssim(x, y)
