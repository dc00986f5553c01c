"""Every camera of the code base: building one (look-at, intrinsics, a crop's intrinsics, a pose),
projecting points, paths for talking-head video, orbit and mirrored views for fitting, camera
centres, the scene extent, and a camera estimated from a photograph. No other module builds a K or
a viewmat (the renderer only consumes them; ``render.projection`` holds the camera centre because
the renderer needs it and may not import this module, which sits above it).

Head frame (docs/DESIGN.md): metres, y up, z out of the face. Cameras are ``render.Camera``:
world->camera ``viewmat`` in OpenCV axes (x right, y down, z forward) and intrinsics K in pixels
(pixel centres at +0.5).

**Building blocks.** For a camera at e looking at a target p with world up u:

    (L) z = (p - e)/|p - e|,  x = (-u) x z / |.|,  y = z x x,   viewmat = [R, -R e; 0, 1], R = [x; y; z]
    (K) K = [[f_x, 0, c_x], [0, f_y, c_y], [0, 0, 1]]         (c = (W/2, H/2) is the image centre)
    (C) K_crop = A K,  A = [[s, 0, -s x_0], [0, s, -s y_0], [0, 0, 1]],  s = size / side
        for the square crop (x_0, y_0, side) of an image resized to size x size pixels
    (P) X_c = R X + t,  u = f_x X_c/Z_c + c_x,  v = f_y Y_c/Z_c + c_y       (points to pixels)

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

from vasa3d_jax.render.projection import camera_center  # eq. 5; the renderer's own (see above)
from vasa3d_jax.render.types import Camera

# Head pivot (m): the template head spans y in [-0.215, 0.114] (neck base to crown) and z in
# [-0.095, 0.12]; aiming 3 cm below the head centre frames face and neck together.
PIVOT = (0.0, -0.03, 0.0)
DISTANCE = 0.6  # metres: with FOCAL_PER_SIZE the view is 0.4 m tall there, the head and neck fit
FOCAL_PER_SIZE = 1.5  # f = 1.5 x image size, the render benchmark's camera (experiments/bench_render.py)
ORBIT_ELEVATION_DEG = 10.0  # slightly above the eyes, as a seated viewer
EXTENT_FACTOR = 1.1  # 3DGS getNerfppNorm: 1.1 x the largest camera distance

CameraSpec = str | tuple[float, float]
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"  # a decimal number, as float() reads it


# ---- building blocks ----------------------------------------------------------------------------
def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> jax.Array:
    """Eq. L: world->camera 4x4 (OpenCV: x right, y down, z forward) for a camera at ``eye`` facing
    ``target``; ``up`` is the world direction that appears upward in the image (default +y)."""
    eye, target, up = (jnp.asarray(v, jnp.float32) for v in (eye, target, up))
    z = target - eye
    z = z / jnp.linalg.norm(z)
    x = jnp.cross(-up, z)  # x = y cross z with image y = -up (y points down in OpenCV)
    x = x / jnp.linalg.norm(x)
    y = jnp.cross(z, x)
    rot = jnp.stack([x, y, z])
    return jnp.eye(4, dtype=jnp.float32).at[:3, :3].set(rot).at[:3, 3].set(-rot @ eye)


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> jax.Array:
    """Eq. K: 3x3 pinhole intrinsics in pixels (pixel centres at +0.5, so cx = W / 2 is the image centre)."""
    return jnp.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], jnp.float32)


def crop_intrinsics(K: np.ndarray, box: tuple[float, float, float], size: int) -> np.ndarray:
    """Eq. C: K of the square crop ``box = (x0, y0, side)`` (pixels) resized to ``size`` pixels."""
    x0, y0, side = box
    s = size / side
    A = np.array([[s, 0.0, -s * x0], [0.0, s, -s * y0], [0.0, 0.0, 1.0]], np.float64)
    return (A @ np.asarray(K, np.float64)).astype(np.float32)


def pose_viewmat(R, t) -> np.ndarray:
    """World->camera ``[R, t; 0, 1]`` (..., 4, 4) float32 from rotations ``R (..., 3, 3)`` and
    translations ``t (..., 3)`` (leading dimensions broadcast)."""
    R, t = np.asarray(R, np.float64), np.asarray(t, np.float64)
    lead = np.broadcast_shapes(R.shape[:-2], t.shape[:-1])
    view = np.zeros(lead + (4, 4), np.float64)
    view[..., :3, :3] = R
    view[..., :3, 3] = t
    view[..., 3, 3] = 1.0
    return view.astype(np.float32)


def project_points(points, viewmat, K) -> tuple[jax.Array, jax.Array]:
    """Eq. P: world points ``(..., N, 3)`` -> (pixels ``(..., N, 2)``, centres at +0.5; camera depth
    ``(..., N)``, metres) through one camera (``viewmat (4, 4)``, ``K (3, 3)``). Depths below 1e-6 m
    divide by 1e-6 (points behind the camera get finite, meaningless pixels: check the depth)."""
    points, viewmat, K = (jnp.asarray(a) for a in (points, viewmat, K))
    cam = points @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = cam[..., 2]
    xy = cam[..., :2] / jnp.maximum(z, 1e-6)[..., None] * jnp.stack([K[0, 0], K[1, 1]]) + K[:2, 2]
    return xy, z


def sphere_viewmat(azimuth_deg: float, elevation_deg: float, distance: float = DISTANCE,
                   pivot=PIVOT) -> np.ndarray:
    """Eq. 1: world->camera 4x4 of a camera ``distance`` metres from ``pivot`` at (azimuth, elevation)
    degrees (azimuth 0 faces the face, positive towards the head's +x), looking at the pivot."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    d = np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])
    pivot = np.asarray(pivot, np.float64)
    return np.asarray(look_at(pivot + distance * d, pivot))


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
        return sphere_viewmat(*self.angles(t, total), self.distance, self.pivot)

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
def scene_extent(viewmats, center=None, factor: float = EXTENT_FACTOR) -> float:
    """Eq. 6: ``factor`` x the largest distance of a camera centre from ``center`` (3,) (default:
    the cameras' mean centre, 3DGS's ``getNerfppNorm``)."""
    centres = np.asarray(camera_center(jnp.asarray(viewmats, jnp.float32)), np.float64).reshape(-1, 3)
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
    view = pose_viewmat(R, t)
    lead = view.shape[:-2]
    return Camera(viewmat=jnp.asarray(view),
                  K=jnp.asarray(np.broadcast_to(K, lead + (3, 3)), jnp.float32), width=width, height=height)
