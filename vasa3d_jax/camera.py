"""Cameras in the head frame: paths for talking-head video, orbit and mirrored views for fitting,
camera centres, the scene extent, and a camera estimated from a photograph.

Head frame (docs/DESIGN.md): metres, y up, z out of the face. Cameras are ``render.Camera``:
world->camera ``viewmat`` in OpenCV axes (x right, y down, z forward) and intrinsics K in pixels
(pixel centres at +0.5).

**Camera paths** look at the head's pivot p from distance d:

    (1) eye(az, el) = p + d (sin az cos el, sin el, cos az cos el)
    (2) orbit: az_t = az_0 + 2 pi t / period,  period = the clip's length (one turn) or given

with focal length f = FOCAL_PER_SIZE * image size (a 37 degree field of view).

**Orbit views** rotate the head about a pivot p while the camera stays: with
R = R_y(azimuth) R_x(elevation),

    (3) V_novel = V · [R, p - R p; 0, 1]

which is what a camera orbiting the head by the opposite angles sees.

**Mirrored views.** Let S = diag(-1, 1, 1) reflect the head frame across its sagittal plane x = 0
and F = diag(-1, 1, 1) flip the camera's x axis. For a camera (V, K) of an image W pixels wide

    (4) V' = F V S (in homogeneous form),   K' = K with c_x' = W - c_x

and any scene satisfies render(S·scene, V') = flip_x(render(scene, V)) exactly (pixel centres at
+0.5 map j <-> W-1-j); ``fit/sds.py`` builds its symmetry prior on it.

**Camera centre and scene extent.** A world->camera [R | t] has its centre at

    (5) c = -R^T t
    (6) E = factor · max_i |c_i - o|,   o = a given centre (the head pivot) or the mean of the c_i

(3DGS / GaussianAvatars ``getNerfppNorm`` use factor 1.1 and the mean; densification's scene extent).

**A camera from a photograph**: intrinsics K in pixels and a world->camera pose (R, t) in the head
frame, OpenCV axes, as a face tracker estimates them: V = [R, t; 0, 1].
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Iterable, Literal

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.render import Camera, intrinsics, look_at

# Head pivot (m): the template head spans y in [-0.215, 0.114] (neck base to crown) and z in
# [-0.095, 0.12]; aiming 3 cm below the head centre frames face and neck together.
PIVOT = (0.0, -0.03, 0.0)
DISTANCE = 0.6  # metres: with FOCAL_PER_SIZE the view is 0.4 m tall there, the head and neck fit
FOCAL_PER_SIZE = 1.5  # f = 1.5 x image size, the render benchmark's camera (experiments/bench_render.py)
ORBIT_ELEVATION_DEG = 10.0  # slightly above the eyes, as a seated viewer
EXTENT_FACTOR = 1.1  # 3DGS getNerfppNorm: 1.1 x the largest camera distance

CameraSpec = str | tuple[float, float]
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"  # a decimal number, as float() reads it


# ---- camera paths ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CameraPath:
    """Where the camera is at each frame (eqs. 1-2); angles in degrees.

    kind: "front", "orbit" or "static". azimuth/elevation: the view (orbit: the start), azimuth 0 =
    facing the face, positive towards the head's +x. period: orbit frames per turn (None: the clip).
    """

    kind: Literal["front", "orbit", "static"] = "front"
    azimuth: float = 0.0  # degrees about +y
    elevation: float = 0.0  # degrees above the horizontal
    period: float | None = None  # orbit only: frames per full turn; None = one turn per clip
    distance: float = DISTANCE  # metres from the pivot
    pivot: tuple[float, float, float] = PIVOT  # head-frame point the camera looks at

    @classmethod
    def parse(cls, spec: "CameraSpec | CameraPath") -> "CameraPath":
        """``"front"``, ``"orbit"``, ``"az=30,el=10"`` (degrees), ``(az, el)`` or a ``CameraPath``."""
        if isinstance(spec, CameraPath):
            return spec
        if isinstance(spec, tuple) and len(spec) == 2:
            return cls.static(*map(float, spec))
        if spec == "front":
            return cls("front")
        if spec == "orbit":
            return cls("orbit", elevation=ORBIT_ELEVATION_DEG)
        m = re.fullmatch(rf"\s*az\s*=\s*({_NUMBER})\s*,\s*el\s*=\s*({_NUMBER})\s*", str(spec))
        if m:
            return cls.static(float(m.group(1)), float(m.group(2)))
        raise ValueError(f"unknown camera {spec!r}; use 'front', 'orbit' or 'az=DEG,el=DEG' "
                         "(e.g. 'az=30,el=10': 30 degrees to the head's left, 10 degrees above)")

    @classmethod
    def static(cls, azimuth: float, elevation: float) -> "CameraPath":
        if not -90.0 < elevation < 90.0:
            raise ValueError(f"elevation={elevation} degrees must lie strictly between -90 and 90")
        return cls("static", azimuth=azimuth, elevation=elevation)

    def angles(self, t: int, total: int | None) -> tuple[float, float]:
        """(azimuth, elevation) in degrees of frame ``t`` of a clip of ``total`` frames (eq. 2)."""
        if self.kind != "orbit":
            return self.azimuth, self.elevation
        period = self.period or total
        if not period:
            raise ValueError("an orbit needs a period (frames per turn) when the clip length is unknown")
        return self.azimuth + 360.0 * t / period, self.elevation

    def viewmat(self, t: int, total: int | None) -> np.ndarray:
        """World->camera 4x4 of frame ``t`` (eq. 1)."""
        az, el = map(math.radians, self.angles(t, total))
        d = np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])
        pivot = np.asarray(self.pivot)
        return np.asarray(look_at(pivot + self.distance * d, pivot))

    def cameras(self, frames: Iterable[int], size: int, total: int | None) -> Camera:
        """A batched ``Camera`` (n, 4, 4) for the given frame indices at ``size`` x ``size`` pixels."""
        views = np.stack([self.viewmat(t, total) for t in frames])
        return Camera(viewmat=jnp.asarray(views), K=jnp.broadcast_to(camera_intrinsics(size), (len(views), 3, 3)),
                      width=size, height=size)


def camera_intrinsics(size: int) -> jax.Array:
    """K of the square path camera (focal length FOCAL_PER_SIZE * size, centred)."""
    f = FOCAL_PER_SIZE * size
    return intrinsics(f, f, size / 2, size / 2)


# ---- orbit and mirrored views ----------------------------------------------------------------------
def _rotation_y(a: jax.Array) -> jax.Array:
    c, s = jnp.cos(a), jnp.sin(a)
    z, o = jnp.zeros_like(a), jnp.ones_like(a)
    return jnp.stack([jnp.stack([c, z, s]), jnp.stack([z, o, z]), jnp.stack([-s, z, c])])


def _rotation_x(a: jax.Array) -> jax.Array:
    c, s = jnp.cos(a), jnp.sin(a)
    z, o = jnp.zeros_like(a), jnp.ones_like(a)
    return jnp.stack([jnp.stack([o, z, z]), jnp.stack([z, c, -s]), jnp.stack([z, s, c])])


def orbit_camera(camera: Camera, azimuth: jax.Array, elevation: jax.Array,
                 pivot: jax.Array) -> Camera:
    """The camera seeing the head rotated by (azimuth, elevation) radians about ``pivot`` (3,), eq. 3.

    camera: unbatched (viewmat (4, 4)); intrinsics and size are kept.
    """
    r = _rotation_y(jnp.asarray(azimuth, jnp.float32)) @ _rotation_x(jnp.asarray(elevation, jnp.float32))
    pivot = jnp.asarray(pivot, jnp.float32)
    m = jnp.eye(4, dtype=jnp.float32).at[:3, :3].set(r).at[:3, 3].set(pivot - r @ pivot)
    return camera.replace(viewmat=camera.viewmat @ m)


def mirror_camera(camera: Camera) -> Camera:
    """The mirrored camera (eq. 4): its render of the reflected scene is the x-flip of ``camera``'s."""
    flip = jnp.diag(jnp.asarray([-1.0, 1.0, 1.0, 1.0], jnp.float32))
    k = camera.K.at[..., 0, 2].set(camera.width - camera.K[..., 0, 2])
    return camera.replace(viewmat=flip @ camera.viewmat @ flip, K=k)


# ---- centres and extent ----------------------------------------------------------------------------
def camera_center(viewmat) -> np.ndarray:
    """Eq. 5: world positions (..., 3) of the cameras ``viewmat (..., 4, 4)`` (world->camera)."""
    v = np.asarray(viewmat, np.float64)
    return -np.einsum("...ji,...j->...i", v[..., :3, :3], v[..., :3, 3])


def scene_extent(viewmats, center=None, factor: float = EXTENT_FACTOR) -> float:
    """Eq. 6: ``factor`` x the largest distance of a camera centre from ``center`` (3,) (default:
    the cameras' mean centre, 3DGS's ``getNerfppNorm``)."""
    centres = camera_center(viewmats).reshape(-1, 3)
    origin = centres.mean(0) if center is None else np.asarray(center, np.float64)
    extent = float(factor * np.max(np.linalg.norm(centres - origin, axis=-1)))
    if extent <= 0:
        raise ValueError("all cameras sit at the extent's centre (e.g. one fixed virtual camera and "
                         "no pivot), so they define no extent; pass center= (the head pivot) or set "
                         "DensifyConfig(extent=...) to the head's scale, e.g. the camera distance")
    return extent


# ---- a camera estimated from a photograph ------------------------------------------------------
def camera_from_estimate(K, R, t, width: int, height: int) -> Camera:
    """``render.Camera`` from estimated intrinsics ``K (3, 3)`` (pixels, pixel centres at +0.5) and a
    world->camera rotation ``R (3, 3)`` and translation ``t (3,)`` in the head frame (OpenCV axes:
    x right, y down, z forward): viewmat = [R, t; 0, 1]. Leading batch dimensions are kept."""
    K, R, t = (np.asarray(a, np.float64) for a in (K, R, t))
    if K.shape[-2:] != (3, 3) or R.shape[-2:] != (3, 3) or t.shape[-1:] != (3,):
        raise ValueError(f"camera_from_estimate needs K (..., 3, 3), R (..., 3, 3), t (..., 3); "
                         f"got {K.shape}, {R.shape}, {t.shape}")
    if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
        raise ValueError(f"{width=} and {height=} must be positive ints (pixels)")
    if not np.allclose(R @ np.swapaxes(R, -1, -2), np.eye(3), atol=1e-4) or np.any(np.linalg.det(R) <= 0):
        raise ValueError("R must be a rotation (orthonormal, det +1); got a matrix that is not: "
                         "orthonormalise the estimate (e.g. with an SVD) first")
    if np.any(K[..., 0, 0] <= 0) or np.any(K[..., 1, 1] <= 0):
        raise ValueError(f"K needs positive focal lengths in pixels; got fx={K[..., 0, 0]}, fy={K[..., 1, 1]}")
    lead = np.broadcast_shapes(K.shape[:-2], R.shape[:-2], t.shape[:-1])
    view = np.zeros(lead + (4, 4), np.float64)
    view[..., :3, :3] = R
    view[..., :3, 3] = t
    view[..., 3, 3] = 1.0
    return Camera(viewmat=jnp.asarray(view, jnp.float32),
                  K=jnp.asarray(np.broadcast_to(K, lead + (3, 3)), jnp.float32), width=width, height=height)
