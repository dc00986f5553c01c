"""Small numerically careful geometry helpers, one copy each for the whole code base.

    (1) safe_norm(x) = |x| over the last axis, with d|x|/dx = x / max(|x|, eps): 0, not NaN, at x = 0
        (sqrt' is infinite there, and most Gaussians' local offsets start at exactly zero)
    (2) normalize(x) = x / max(|x|, eps): a zero vector stays zero
    (3) rodrigues(v) = I + (sin θ / θ) [v]_x + ((1 - cos θ) / θ²) [v]_x²,  θ = |v|
        (axis-angle -> rotation matrix; below θ² = 1e-6 the two ratios use their 2nd-order Taylor
        expansions, whose truncation error < θ^4/120 ≈ 1e-14 is far below float32 eps, so the
        function is smooth and differentiable at v = 0)
    (4) rotmat_to_quat(R): Shepperd's method (S. W. Shepperd, "Quaternion from rotation matrix",
        J. Guidance and Control 1(3), 1978): of 4w², 4x², 4y², 4z² (each from R's diagonal) the
        largest picks the best-conditioned row of 4 q_i q, which is normalised (stable for all
        angles); sign chosen so that w >= 0
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Smallest length treated as non-zero when normalising; far below any triangle edge in metres.
_EPS = 1e-12
# Below this squared angle (rad^2) eq. 3 uses its Taylor branch.
_SMALL_ANGLE_SQ = 1e-6


@jax.custom_jvp
def safe_norm(x: jax.Array) -> jax.Array:
    """Eq. 1: |x| over the last axis, keepdims; gradient 0 (not NaN) at x = 0."""
    return jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))


@safe_norm.defjvp
def _safe_norm_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    n = safe_norm(x)
    return n, jnp.sum(x * dx, axis=-1, keepdims=True) / jnp.maximum(n, _EPS)


def normalize(x: jax.Array) -> jax.Array:
    """Eq. 2: x / |x| over the last axis; a zero vector stays zero."""
    return x / jnp.maximum(safe_norm(x), _EPS)


def rodrigues(axis_angle: jax.Array) -> jax.Array:
    """Eq. 3: axis-angle (..., 3) in radians -> rotation matrices (..., 3, 3); smooth at zero."""
    theta_sq = jnp.sum(axis_angle**2, axis=-1)
    small = theta_sq < _SMALL_ANGLE_SQ
    safe_sq = jnp.where(small, 1.0, theta_sq)
    theta = jnp.sqrt(safe_sq)
    a = jnp.where(small, 1.0 - theta_sq / 6.0, jnp.sin(theta) / theta)  # sin θ / θ
    b = jnp.where(small, 0.5 - theta_sq / 24.0, (1.0 - jnp.cos(theta)) / safe_sq)  # (1-cos θ)/θ²
    x, y, z = axis_angle[..., 0], axis_angle[..., 1], axis_angle[..., 2]
    zero = jnp.zeros_like(x)
    k = jnp.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(axis_angle.shape + (3,))
    eye = jnp.eye(3, dtype=axis_angle.dtype)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def rotmat_to_quat(r: jax.Array) -> jax.Array:
    """Eq. 4: ``(..., 3, 3)`` rotation matrix -> unit wxyz quaternion ``(..., 4)`` with w >= 0 (Shepperd)."""
    m00, m11, m22 = r[..., 0, 0], r[..., 1, 1], r[..., 2, 2]
    trace = m00 + m11 + m22
    # 4 w^2, 4 x^2, 4 y^2, 4 z^2 (each from the diagonal); the largest gives the best-conditioned row.
    sq = jnp.stack([1 + trace, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    # Row i holds 4 * q_i * q for the i-th choice of pivot (standard Shepperd identities).
    r21, r12 = r[..., 2, 1], r[..., 1, 2]
    r02, r20 = r[..., 0, 2], r[..., 2, 0]
    r10, r01 = r[..., 1, 0], r[..., 0, 1]
    cand = jnp.stack([
        jnp.stack([sq[..., 0], r21 - r12, r02 - r20, r10 - r01], -1),
        jnp.stack([r21 - r12, sq[..., 1], r01 + r10, r02 + r20], -1),
        jnp.stack([r02 - r20, r01 + r10, sq[..., 2], r12 + r21], -1),
        jnp.stack([r10 - r01, r02 + r20, r12 + r21, sq[..., 3]], -1),
    ], axis=-2)
    pivot = jnp.argmax(sq, axis=-1)
    q = jnp.take_along_axis(cand, pivot[..., None, None], axis=-2)[..., 0, :]
    q = normalize(q)
    return jnp.where(q[..., :1] < 0, -q, q)
