"""AMD FidelityFX contrast-adaptive sharpening (CAS), the no-scaling path, in JAX.

Source of the formula: AMD FidelityFX CAS, ``ffx_cas.h`` (GPUOpen-Effects/FidelityFX-CAS, MIT
licence), ``CasSetup`` and ``CasFilter(noScaling=true)`` with ``CAS_BETTER_DIAGONALS`` (the variant
its "ALGORITHM DESCRIPTION" documents), ``CAS_SLOW`` (weights per channel) and ``CAS_GO_SLOWER``
(exact reciprocal and square root instead of the GPU approximations).

For every pixel e of one channel with 3×3 neighbourhood

    a b c
    d e f
    g h i

    (1)  mn = min(b, d, e, f, h) + min(a..i),   mx = max(b, d, e, f, h) + max(a..i)   (soft min/max, ×2)
    (2)  A  = sqrt( clamp( min(mn, 2 - mx) / mx, 0, 1 ) )                              (sharpening amount)
    (3)  peak = -1 / lerp(8, 5, sharpness) = -1 / (8 - 3·sharpness),   w = A · peak    (negative lobe)
    (4)  out = clamp( (w·(b + d + f + h) + e) / (1 + 4w), 0, 1 )

Flat regions (mn = 2e = mx) stay unchanged; at an edge the lobe w < 0 pushes both sides apart.
Pixels outside the image repeat the border (clamp-to-edge addressing). Where mx = 0 (a black
neighbourhood) the ratio in (2) is taken as 0, i.e. no sharpening, instead of the GPU's 0·inf.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# ffx_cas.h CasSetup: sharpness 0 is AMD's default ("lower ringing"), 1 the maximum.
DEFAULT_SHARPNESS = 0.0


def cas(image: jax.Array, sharpness: float | jax.Array = DEFAULT_SHARPNESS) -> jax.Array:
    """Contrast-adaptive sharpening (1-4) of images in [0, 1].

    image:     (..., H, W, C) float, values in [0, 1] (CAS assumes that range: eq. 2 uses 2 - mx)
    sharpness: scalar in [0, 1] (clamped, as CasSetup does)
    returns:   (..., H, W, C) float32 in [0, 1]
    """
    if image.ndim < 3:
        raise ValueError(f"CAS takes (..., H, W, C) images; got shape {image.shape}")
    x = image.astype(jnp.float32)
    pad = [(0, 0)] * (x.ndim - 3) + [(1, 1), (1, 1), (0, 0)]
    p = jnp.pad(x, pad, mode="edge")
    h, w = x.shape[-3:-1]

    def tap(dy: int, dx: int) -> jax.Array:
        return p[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w, :]

    b, d, e, f, hh = tap(-1, 0), tap(0, -1), tap(0, 0), tap(0, 1), tap(1, 0)
    corners = (tap(-1, -1), tap(-1, 1), tap(1, -1), tap(1, 1))
    cross_min = jnp.minimum(jnp.minimum(jnp.minimum(d, e), jnp.minimum(f, b)), hh)
    cross_max = jnp.maximum(jnp.maximum(jnp.maximum(d, e), jnp.maximum(f, b)), hh)
    box_min, box_max = cross_min, cross_max
    for c in corners:
        box_min = jnp.minimum(box_min, c)
        box_max = jnp.maximum(box_max, c)
    mn = cross_min + box_min  # (1)
    mx = cross_max + box_max
    ratio = jnp.where(mx > 0, jnp.minimum(mn, 2.0 - mx) / jnp.where(mx > 0, mx, 1.0), 0.0)
    amp = jnp.sqrt(jnp.clip(ratio, 0.0, 1.0))  # (2)
    peak = -1.0 / (8.0 - 3.0 * jnp.clip(sharpness, 0.0, 1.0))  # (3)
    wgt = amp * peak
    out = (wgt * (b + d + f + hh) + e) / (1.0 + 4.0 * wgt)  # (4)
    return jnp.clip(out, 0.0, 1.0)
