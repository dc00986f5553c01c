"""View-dependent colour from real spherical harmonics, degrees 0 to 3 (gsplat 1.5.3 semantics).

For a Gaussian with SH coefficients ``k_l`` (l = 0..(d+1)^2-1, each an RGB triple) seen from the
camera centre ``o``:

    (1) v = (mu - o) / |mu - o|                      view direction, world frame
    (2) c = max(sum_l Y_l(v) k_l + 0.5, 0)           colour (gsplat ``rasterization``: clamp_min(sh + 0.5, 0))

with the real SH basis ``Y_l`` of Sloan, "Efficient Spherical Harmonic Evaluation", JCGT 2013, in
the sign convention of the 3DGS reference (Kerbl et al. 2023, ``utils/sh_utils.py``) and of gsplat's
``_eval_sh_bases_fast`` (gsplat 1.5.3 ``gsplat/cuda/_torch_impl.py``); the constants below are the
normalisation factors of that basis, numbered by band.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Normalisation constants of the real SH basis (Sloan 2013, Table 1; same values in gsplat 1.5.3).
_C0 = 0.2820947917738781  # 1 / (2 sqrt(pi))
_C1 = 0.48860251190292  # sqrt(3 / (4 pi))
_C2 = (1.092548430592079, 0.9461746957575601, 0.3153915652525201, 0.5462742152960395)
_C3 = (0.5900435899266435, 1.445305721320277, 2.285228997322329, 0.4570457994644658,
       1.865881662950577, 1.119528997770346)


def sh_basis(degree: int, dirs: jax.Array) -> jax.Array:
    """Real SH basis values Y_l(dirs) for l < (degree+1)^2.

    dirs: (..., 3) unit directions. Returns (..., (degree+1)^2), ordered band by band, m = -l..l.
    """
    if not 0 <= degree <= 3:
        raise ValueError(f"SH degree must be in 0..3, got {degree=}")
    x, y, z = dirs[..., 0], dirs[..., 1], dirs[..., 2]
    out = [jnp.full_like(x, _C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        z2 = z * z
        c1 = x * x - y * y  # cos(2 phi) sin^2(theta)
        s1 = 2.0 * x * y  # sin(2 phi) sin^2(theta)
        out += [_C2[3] * s1, -_C2[0] * z * y, _C2[1] * z2 - _C2[2], -_C2[0] * z * x, _C2[3] * c1]
    if degree >= 3:
        c2 = x * c1 - y * s1
        s2 = x * s1 + y * c1
        tc = -_C3[2] * z2 + _C3[3]
        out += [-_C3[0] * s2, _C3[1] * z * s1, tc * y, z * (_C3[4] * z2 - _C3[5]), tc * x,
                _C3[1] * z * c1, -_C3[0] * c2]
    return jnp.stack(out, axis=-1)


def sh_to_color(coeffs: jax.Array, means: jax.Array, cam_center: jax.Array) -> jax.Array:
    """Equations (1)-(2): colours of Gaussians seen from ``cam_center``.

    coeffs: (N, K, 3) with K = (d+1)^2; means: (N, 3); cam_center: (3,). Returns (N, 3).
    """
    k = coeffs.shape[-2]
    degree = int(round(k ** 0.5)) - 1
    if (degree + 1) ** 2 != k:
        raise ValueError(f"SH coefficients need K=(d+1)^2 entries, got K={k}; pad to the next square")
    d = means - cam_center
    # gsplat normalises with F.normalize (eps 1e-12); a Gaussian exactly at the camera centre has no
    # direction, and is culled by the near plane anyway.
    v = d / jnp.maximum(jnp.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
    sh = jnp.einsum("nk,nkc->nc", sh_basis(degree, v), coeffs)
    return jnp.maximum(sh + 0.5, 0.0)
