"""EWA projection of 3D Gaussians to screen space, with culling (gsplat 1.5.3 semantics).

Follows gsplat 1.5.3's fused CUDA projection (``csrc/ProjectionEWA3DGSFused.cu``,
``include/Utils.cuh``) as summarised in ``reference/splatting.md`` section 1.3. For one Gaussian
(mean mu, quaternion q = (w, x, y, z), scales s) and a camera (viewmat [R_v | t_v], intrinsics fx,
fy, cx, cy, image W x H):

    (1) R = rotmat(q / |q|),  Sigma = (R diag(s)) (R diag(s))^T                  3D covariance
    (2) t = R_v mu + t_v,  Sigma_c = R_v Sigma R_v^T                             camera frame
        cull if t_z < near or t_z > far
    (3) mu2d = (fx t_x / t_z + cx,  fy t_y / t_z + cy)                           pixels (centres at +0.5)
    (4) u = t_z clamp(t_x / t_z, -(cx/fx + 0.3 tx_fov), (W - cx)/fx + 0.3 tx_fov), tx_fov = W / (2 fx)
        (likewise v for y); J = [[fx/t_z, 0, -fx u / t_z^2], [0, fy/t_z, -fy v / t_z^2]]
        Sigma2d = J Sigma_c J^T                                                  the clamp acts on J only
    (5) det0 = det(Sigma2d);  Sigma2d += eps2d I;  det = det(Sigma2d);  cull if det <= 0
        compensation = sqrt(max(0, det0 / det))
    (6) conic = (Sigma2d_11 / det, -Sigma2d_01 / det, Sigma2d_00 / det)         inverse, upper triangle
    (7) o' = o compensation (antialiased) or o;  cull if o' < 1/255
        e = min(3.33, sqrt(2 ln(255 o')));  r_x = ceil(e sqrt(Sigma2d_00)),  r_y = ceil(e sqrt(Sigma2d_11))
        cull if r_x <= radius_clip and r_y <= radius_clip, or if the box [mu2d - r, mu2d + r] lies
        outside the image.

Equation (7) is the opacity-aware radius: alpha = o' exp(-sigma) >= 1/255 implies a Mahalanobis
distance <= e, so the per-axis box covers every pixel the Gaussian can reach. With ``opacities=None``
the radius uses e = 3.33 (gsplat's projection without opacities, and its torch reference).
Everything here is plain JAX and differentiates with autodiff (as gsplat's torch path); culled
Gaussians get radii 0 and finite, gradient-safe values in the other fields.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from vasa3d_jax.constants import ALPHA_THRESHOLD

EPS2D = 0.3  # gsplat 1.5.3 rasterization(eps2d=0.3): low-pass filter added to Sigma2d
GAUSSIAN_EXTEND = 3.33  # gsplat 1.5.3: radius in standard deviations without opacity
FOV_CLAMP_MARGIN = 0.3  # gsplat 1.5.3 persp_proj: J clamp reaches 0.3 tan(fov) past the border


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Projected:
    """Screen-space Gaussians for one camera.

    means2d:       (N, 2) float, centres in pixels (equation 3)
    depths:        (N,)   float, camera z in metres
    conics:        (N, 3) float, (a, b, c) of the inverse blurred 2D covariance (equation 6)
    opacities:     (N,)   float, opacity used for compositing (times compensation if antialiased;
                   ones when ``project`` got ``opacities=None``)
    compensations: (N,)   float, sqrt(det0 / det) of equation (5)
    radii:         (N, 2) int32, per-axis radius in pixels, 0 where culled
    """

    means2d: jax.Array
    depths: jax.Array
    conics: jax.Array
    opacities: jax.Array
    compensations: jax.Array
    radii: jax.Array

    @property
    def visible(self) -> jax.Array:
        """(N,) bool: survived culling."""
        return jnp.any(self.radii > 0, axis=-1)


def quat_to_rotmat(quats: jax.Array) -> jax.Array:
    """(..., 4) wxyz quaternions (any norm) -> (..., 3, 3) rotation matrices (equation 1)."""
    w, x, y, z = (quats[..., i] for i in range(4))
    norm = jnp.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def quat_scale_to_covar(quats: jax.Array, scales: jax.Array) -> jax.Array:
    """Equation (1): (..., 4) quaternions and (..., 3) scales -> (..., 3, 3) covariances."""
    rot = quat_to_rotmat(quats)
    m = [[rot[..., i, k] * scales[..., k] for k in range(3)] for i in range(3)]  # R diag(s)
    entries = [sum(m[i][k] * m[j][k] for k in range(3)) for i in range(3) for j in range(3)]
    return jnp.stack(entries, axis=-1).reshape(quats.shape[:-1] + (3, 3))


def camera_center(viewmat: jax.Array) -> jax.Array:
    """World positions (..., 3) of the camera centres, c = -R_v^T t_v, of world->camera matrices
    ``viewmat (..., 4, 4)``: the one definition (``camera.camera_center`` is this function)."""
    viewmat = jnp.asarray(viewmat)
    return -jnp.einsum("...ji,...j->...i", viewmat[..., :3, :3], viewmat[..., :3, 3])


def project(
    means: jax.Array,
    quats: jax.Array,
    scales: jax.Array,
    opacities: jax.Array | None,
    viewmat: jax.Array,
    K: jax.Array,
    *,
    width: int,
    height: int,
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = EPS2D,
    antialiased: bool = False,
    radius_clip: float = 0.0,
) -> Projected:
    """Equations (1)-(7) for N Gaussians and one camera.

    means (N, 3), quats (N, 4), scales (N, 3), opacities (N,) or None (radius with e = 3.33 and no
    opacity cull), viewmat (4, 4), K (3, 3). Returns a ``Projected``.
    """
    if means.ndim != 2 or means.shape[-1] != 3:
        raise ValueError(f"means must be (N, 3) here (batch dims are vmapped by render); got {means.shape}")
    # The per-Gaussian products are written out entry by entry (XLA fuses them, and their autodiff
    # stays elementwise) and the camera rotation of every covariance is one (N, 9) x (9, 9) product:
    # batched matmuls of 3 x 3 matrices and the reductions that transpose their broadcasts cost XLA:CPU
    # several times more (projection forward and its gradient ~2.5x faster).
    covars = quat_scale_to_covar(quats, scales).reshape(-1, 9)
    rv, tv = viewmat[:3, :3], viewmat[:3, 3]
    t = jnp.stack([sum(rv[i, k] * means[:, k] for k in range(3)) + tv[i] for i in range(3)], axis=-1)
    cov_c = covars @ jnp.kron(rv, rv).T  # R_v Sigma R_v^T, rows (i, j) row-major
    z = t[:, 2]
    in_depth = (z >= near) & (z <= far)  # gsplat CUDA culls z < near || z > far
    zs = jnp.where(in_depth, z, 1.0)  # keeps culled entries finite (and their gradients NaN-free)

    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tan_fovx = 0.5 * width / fx
    tan_fovy = 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + FOV_CLAMP_MARGIN * tan_fovx
    lim_x_neg = cx / fx + FOV_CLAMP_MARGIN * tan_fovx
    lim_y_pos = (height - cy) / fy + FOV_CLAMP_MARGIN * tan_fovy
    lim_y_neg = cy / fy + FOV_CLAMP_MARGIN * tan_fovy
    u = zs * jnp.clip(t[:, 0] / zs, -lim_x_neg, lim_x_pos)
    v = zs * jnp.clip(t[:, 1] / zs, -lim_y_neg, lim_y_pos)
    j00, j02 = fx / zs, -fx * u / (zs * zs)  # J = [[j00, 0, j02], [0, j11, j12]]
    j11, j12 = fy / zs, -fy * v / (zs * zs)
    c = [cov_c[:, k] for k in range(9)]
    c00 = j00 * (j00 * c[0] + j02 * c[2]) + j02 * (j00 * c[6] + j02 * c[8])  # J Sigma_c J^T
    c01 = j00 * (j11 * c[1] + j12 * c[2]) + j02 * (j11 * c[7] + j12 * c[8])
    c11 = j11 * (j11 * c[4] + j12 * c[5]) + j12 * (j11 * c[7] + j12 * c[8])
    means2d = jnp.stack([fx * t[:, 0] / zs + cx, fy * t[:, 1] / zs + cy], axis=-1)

    det0 = c00 * c11 - c01 * c01
    s00 = c00 + eps2d
    s11 = c11 + eps2d
    det = s00 * s11 - c01 * c01
    ok = in_depth & (det > 0)
    det_s = jnp.where(ok, det, 1.0)
    compensation = jnp.sqrt(jnp.maximum(jnp.where(ok, det0, 0.0) / det_s, 0.0))
    conics = jnp.stack([s11 / det_s, -c01 / det_s, s00 / det_s], axis=-1)

    if opacities is None:
        op = jnp.ones_like(z)
        extend = jnp.full_like(z, GAUSSIAN_EXTEND)
    else:
        op = opacities * compensation if antialiased else opacities
        ok = ok & (op >= ALPHA_THRESHOLD)
        op_s = jnp.where(ok, op, 1.0)
        extend = jnp.minimum(GAUSSIAN_EXTEND, jnp.sqrt(2.0 * jnp.log(op_s / ALPHA_THRESHOLD)))
    # Radii are integers (no gradient); clamp s00/s11 positive so culled entries stay finite.
    ext = jax.lax.stop_gradient(extend)
    rx = jnp.ceil(ext * jnp.sqrt(jnp.maximum(jax.lax.stop_gradient(s00), 0.0)))
    ry = jnp.ceil(ext * jnp.sqrt(jnp.maximum(jax.lax.stop_gradient(s11), 0.0)))
    m2 = jax.lax.stop_gradient(means2d)
    ok = ok & ~((rx <= radius_clip) & (ry <= radius_clip))
    ok = ok & ~((m2[:, 0] + rx <= 0) | (m2[:, 0] - rx >= width) | (m2[:, 1] + ry <= 0) | (m2[:, 1] - ry >= height))
    radii = jnp.where(ok[:, None], jnp.stack([rx, ry], axis=-1), 0.0).astype(jnp.int32)
    return Projected(
        means2d=means2d,
        depths=z,
        conics=conics,
        opacities=op,
        compensations=compensation,
        radii=radii,
    )
