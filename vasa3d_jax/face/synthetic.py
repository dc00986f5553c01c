"""Synthetic landmarks with known latents, identity and camera: the encoder's round-trip check.

Landmarks are the full head's landmark vertices, posed as ``GaussianAvatar`` poses them with its
linear priors (avatar.py eqs. (1)-(3)), seen by the camera of encode.py eqs. (2)-(3). MediaPipe's z
is imitated by weak perspective: z_i = f (Z_i − Z̄)/(Z̄ W) image widths (Z̄ the mean landmark depth),
smaller towards the camera. The iris centre is the eyeball's front pole (all 5 iris points set to it).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.camera import intrinsics, pose_viewmat, project_points
from vasa3d_jax.face import encode
from vasa3d_jax.head.base import HeadModel
from vasa3d_jax.head.prior import base_priors
from vasa3d_jax.motion_space import MotionSpace


@dataclasses.dataclass(frozen=True)
class SyntheticFaces:
    """Duck-typed ``FaceAnalysis`` of (T, ...) arrays."""

    landmarks: np.ndarray  # (T, 468, 3) pixels (z: weak-perspective relative depth, image widths)
    iris: np.ndarray  # (T, 2, 5, 2) pixels, subject's right eye first
    image_size: tuple[int, int]  # (H, W)
    valid: np.ndarray  # (T,) bool


def random_identity(head: HeadModel, key: jax.Array, num_modes: int = 48, scale: float = 0.004) -> np.ndarray:
    """A smooth random identity: ``num_modes`` Laplacian modes per axis (twice the encoder's),
    standard deviation ``scale`` metres on the lowest, falling as 1/(1 + k/8)."""
    if head.shapedirs is not None:
        return np.asarray(jax.random.normal(key, (head.num_shape,)) * 0.5 * (np.arange(head.num_shape) < 20))
    basis = np.asarray(encode.landmark_model(head, MotionSpace.builtin(), num_modes).basis)
    k = np.arange(basis.shape[-1]) // 3
    b = np.asarray(jax.random.normal(key, (basis.shape[-1],))) * scale / (1.0 + k / 8.0)
    return np.einsum("vck,k->vc", basis, b).reshape(-1).astype(np.float32)


def random_latents(space: MotionSpace, key: jax.Array, n: int, max_yaw_deg: float = 40.0,
                   max_pitch_deg: float = 20.0, max_roll_deg: float = 10.0,
                   active: float = 0.5) -> np.ndarray:
    """(n, D): each AU on with probability ``active`` at U(low, high), gaze U(±0.3 rad), yaw, pitch,
    roll uniform within the limits, translation U(±2 cm)."""
    ks = jax.random.split(key, 6)
    x = np.zeros((n, space.size), np.float32)
    for i, c in enumerate(space.dyn):
        if c.unit == "intensity":
            on = np.asarray(jax.random.bernoulli(jax.random.fold_in(ks[0], i), active, (n,)))
            x[:, i] = on * np.asarray(jax.random.uniform(jax.random.fold_in(ks[1], i), (n,), minval=c.low, maxval=c.high))
        elif c.name.startswith("gaze"):
            x[:, i] = np.asarray(jax.random.uniform(jax.random.fold_in(ks[2], i), (n,), minval=-0.3, maxval=0.3))
    d = space.dyn_size
    lim = np.deg2rad([max_pitch_deg, max_yaw_deg, max_roll_deg])
    x[:, d:d + 3] = np.asarray(jax.random.uniform(ks[3], (n, 3), minval=-1, maxval=1)) * lim
    x[:, d + 3:d + 6] = np.asarray(jax.random.uniform(ks[4], (n, 3), minval=-0.02, maxval=0.02))
    return x


def posed_vertices(head: HeadModel, space: MotionSpace, latents, identity) -> jax.Array:
    """(T, D) -> (T, V, 3): avatar.py eqs. (1)-(3) with the untrained (prior-only) base networks."""
    p_exp, p_pose = base_priors(space, head)
    z_dyn, z_pose = space.split(jnp.asarray(latents))
    e, p = z_dyn @ p_exp, z_pose @ p_pose
    n = head.num_expression
    pose = jnp.concatenate([p[:, 3:6], p[:, 0:3], e[:, n:n + 3], e[:, n + 3:n + 9]], -1)
    return head.vertices(jnp.broadcast_to(identity, (len(latents), head.num_shape)), e[:, :n], pose) + p[:, None, 6:9]


def project_landmarks(head: HeadModel, space: MotionSpace, latents, identity, K, viewmat,
                      image_size: tuple[int, int], noise_px: float = 0.0,
                      key: jax.Array | None = None) -> SyntheticFaces:
    """Landmarks and iris centres of ``latents`` seen by (K, viewmat), plus Gaussian pixel noise."""
    model = encode.landmark_model(head, space)
    v = posed_vertices(head, space, latents, jnp.asarray(identity))[:, model.vertex_ids]
    uv, depth = project_points(v, viewmat, K)
    if noise_px > 0:
        uv = uv + noise_px * jax.random.normal(key, uv.shape)
    zbar = depth[:, :468].mean(-1, keepdims=True)
    z = K[0][0] * (depth[:, :468] - zbar) / zbar / image_size[1]
    lmk = jnp.concatenate([uv[:, :468], z[..., None]], -1)
    iris = jnp.broadcast_to(uv[:, 468:, None, :], (len(latents), 2, 5, 2))
    return SyntheticFaces(landmarks=np.asarray(lmk, np.float32), iris=np.asarray(iris, np.float32),
                          image_size=tuple(image_size), valid=np.ones(len(latents), bool))


def camera_for(image_size: tuple[int, int], focal: float, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """(K, viewmat) of encode.py eq. 2: a frontal camera ``distance`` metres from the head centre."""
    h, w = image_size
    return np.asarray(intrinsics(focal, focal, w / 2, h / 2)), pose_viewmat(encode.R_CAMERA, (0.0, 0.0, distance))
