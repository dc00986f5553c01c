"""Gaussians bound to mesh triangles (GaussianAvatars binding) and the quaternion helpers it needs.

Every Gaussian lives in the frame of its parent triangle (Qian et al., "GaussianAvatars", CVPR 2024;
``ShenhanQian/GaussianAvatars``: ``utils/graphics_utils.py::compute_face_orientation`` and
``scene/flame_gaussian_model.py``; summarised in ``reference/splatting.md`` §4.1). For a triangle
with corners (v0, v1, v2):

    (1)  a0 = normalize(v1 - v0)                         the first edge
    (2)  a1 = normalize(a0 x (v2 - v0))                  the normal
    (3)  a2 = -normalize(a1 x a0)  (= a0 x a1)           completes a right-handed frame
    (4)  R_f = [a0 a1 a2]  (columns),  q_f = quat(R_f)   triangle orientation (wxyz)
    (5)  k_f = (|v1 - v0| + |a2 . (v2 - v0)|) / 2        triangle scale (edge length and height)
    (6)  T_f = (v0 + v1 + v2) / 3                        triangle centroid

A Gaussian with local attributes (mu_l, q_l, s_l) bound to triangle f has world attributes

    (7)  mu = k_f R_f mu_l + T_f
    (8)  q  = q_f (x) normalize(q_l)                     Hamilton product, wxyz
    (9)  s  = k_f exp(s_l)                               s_l is a log scale

so when the mesh moves rigidly (R, t) every frame rotates with it, k_f is unchanged, and the
Gaussians move rigidly with the head; a non-rigid mesh deformation stretches them with the local
triangle scale.

Quaternions are wxyz (the renderer's convention, DESIGN.md); frames' quaternions come from
``geometry.rotmat_to_quat`` (Shepperd's method).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from vasa3d_jax.geometry import normalize, rotmat_to_quat, safe_norm
from vasa3d_jax.render.projection import quat_to_rotmat  # the one rotation formula (the renderer's)

# ---- quaternions (wxyz) ---------------------------------------------------------------------------

def quat_multiply(a: jax.Array, b: jax.Array) -> jax.Array:
    """Hamilton product a (x) b of wxyz quaternions ``(..., 4)``: rotate by b, then by a."""
    aw, ax, ay, az = jnp.moveaxis(a, -1, 0)
    bw, bx, by, bz = jnp.moveaxis(b, -1, 0)
    return jnp.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def axis_angle_to_quat(v: jax.Array) -> jax.Array:
    """Axis-angle ``(..., 3)`` (radians) -> unit wxyz quaternion; smooth (sinc form) at v = 0."""
    theta = safe_norm(v)
    half = 0.5 * theta
    # sin(theta/2)/theta = 0.5 * sinc(theta / (2 pi)) with numpy's normalised sinc; exact at 0.
    return jnp.concatenate([jnp.cos(half), 0.5 * jnp.sinc(half / jnp.pi) * v], axis=-1)


# ---- triangle frames ------------------------------------------------------------------------------

@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TriangleFrames:
    """The local frame of every triangle of a mesh, eqs. (1)-(6).

    rotations: (..., F, 3, 3) float32, R_f with columns (edge, normal, edge x normal)
    quats:     (..., F, 4)    float32, q_f, the same rotation as a unit wxyz quaternion
    scales:    (..., F)       float32, k_f in metres
    centroids: (..., F, 3)    float32, T_f in metres
    """

    rotations: jax.Array
    quats: jax.Array
    scales: jax.Array
    centroids: jax.Array


def triangle_frames(vertices: jax.Array, faces: jax.Array) -> TriangleFrames:
    """Eqs. (1)-(6) for every triangle: ``vertices (..., V, 3)``, ``faces (F, 3) int`` -> frames."""
    if vertices.shape[-1] != 3 or faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"need vertices (..., V, 3) and faces (F, 3); got {vertices.shape=} "
                         f"{faces.shape=}")
    tri = vertices[..., faces, :]  # (..., F, 3 corners, 3)
    v0, v1, v2 = tri[..., 0, :], tri[..., 1, :], tri[..., 2, :]
    e1, e2 = v1 - v0, v2 - v0
    a0 = normalize(e1)
    a1 = normalize(jnp.cross(a0, e2))
    a2 = -normalize(jnp.cross(a1, a0))
    rot = jnp.stack([a0, a1, a2], axis=-1)
    k = 0.5 * (safe_norm(e1)[..., 0] + jnp.abs(jnp.sum(a2 * e2, axis=-1)))
    return TriangleFrames(rotations=rot, quats=rotmat_to_quat(rot), scales=k,
                          centroids=jnp.mean(tri, axis=-2))


def gather_frames(frames: TriangleFrames, parent: jax.Array) -> TriangleFrames:
    """The frame of each Gaussian's parent triangle: ``parent (N,) int`` -> per-Gaussian frames."""
    return TriangleFrames(rotations=jnp.take(frames.rotations, parent, axis=-3),
                          quats=jnp.take(frames.quats, parent, axis=-2),
                          scales=jnp.take(frames.scales, parent, axis=-1),
                          centroids=jnp.take(frames.centroids, parent, axis=-2))


def local_to_world(means_local: jax.Array, quats_local: jax.Array, log_scales: jax.Array,
                   frames: TriangleFrames) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Eqs. (7)-(9) with per-Gaussian ``frames`` (see ``gather_frames``): -> (means, quats, scales).

    means_local (..., N, 3) in triangle units, quats_local (..., N, 4) wxyz, log_scales (..., N, 3).
    """
    k = frames.scales[..., None]
    means = k * jnp.einsum("...ij,...j->...i", frames.rotations, means_local) + frames.centroids
    quats = quat_multiply(frames.quats, normalize(quats_local))
    scales = k * jnp.exp(log_scales)
    return means, quats, scales


def world_to_local_means(means: jax.Array, frames: TriangleFrames) -> jax.Array:
    """The inverse of eq. (7): world positions ``(..., N, 3)`` -> local positions in triangle units."""
    d = means - frames.centroids
    return jnp.einsum("...ji,...j->...i", frames.rotations, d) / frames.scales[..., None]
