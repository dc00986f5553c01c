"""Driving and rendering an avatar, sized by the one intersection-capacity policy
(``vasa3d_jax.render.capacity``).

Per motion frame x and camera c (``Avatar``: a ``GaussianAvatar`` and its parameters):

    (1) (G', G'') = avatar.apply(params, x)                      base and residual deformation
    (2) I = render(G'', c, capacity=C)                            gsplat semantics, fixed capacity
    (3) C = capacity_for(max_{x in P, c in Q} required_capacity(G''(x), c))   (render/capacity.py eqs. 1-2)

C is a static shape, so one compiled function renders every frame of a run. The probe set P and the
cameras Q are what the caller knows: a clip's frames plus the neutral face and the mouth wide open
(``FrameRenderer.prepare``), a path's cameras (``PROBE_VIEWS`` of an unbounded one), or the very
frames of a batch (``render_frames``, ``fit``'s training views). Whenever a render reports
``isect_overflow`` > 0, C grows and the render is done again (``on_overflow="resize"``), or the call
raises (``"raise"``): render/capacity.py eq. 3, no image is ever used truncated. The session, the
fitting step (``fit/trainer.py``), the fitting data (``fit/data.render_dataset``) and the previews
all size and check their renders here.
"""

from __future__ import annotations

import functools
import dataclasses
import time
from typing import Iterator, Literal

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.avatar.avatar import GaussianAvatar, residual_is_zero
from vasa3d_jax.avatar.io import Avatar
from vasa3d_jax.camera import CameraPath, CameraSpec, camera_intrinsics
from vasa3d_jax.motion_space import MotionSpace
from vasa3d_jax.render import Camera, RenderOutput, render
from vasa3d_jax.render.capacity import OverflowReport, capacity_for, required_capacity, run_checked

PROBE_VIEWS = 8  # cameras of an unbounded path (e.g. a streaming orbit) probed for the capacity
PROBE_FRAMES = 16  # motion frames of a known clip probed (evenly spaced), besides the fixed probes
# Frames per compiled render call: vmapping the deformation over 8 frames costs about half the
# per-frame time of one frame per call (experiments/bench_talk.py); more brings little and delays
# a stream's first frame.
BATCH = 8

Stage = Literal["final", "both"]


def render_avatar(model: GaussianAvatar, params: dict, x: jax.Array, camera: Camera, background, *,
                  capacity: int, backend: str = "auto", stage: Stage = "final",
                  residual: bool = True) -> RenderOutput:
    """Eqs. 1-2, pure and jittable: frames ``x (..., D)`` seen by ``camera`` (matching batch dims).

    stage: "final" renders G''; "both" renders G' and G'' stacked on a new leading axis of 2.
    residual: False skips the residual networks (``GaussianAvatar.apply``), exact when
    ``residual_is_zero(params)``. Check ``isect_overflow`` of the result (``render_checked`` does).
    """
    (g_base, g_final), _ = model.apply(params, x, residual=residual)
    g = g_final if stage == "final" else jax.tree.map(lambda a, b: jnp.stack([a, b]), g_base, g_final)
    return render(g, camera, jnp.asarray(background, jnp.float32), backend, capacity=capacity)


@functools.partial(jax.jit, static_argnames=("model", "capacity", "backend", "stage", "residual"))
def _render_jit(model: GaussianAvatar, params: dict, x, camera: Camera, background, *, capacity: int,
                backend: str, stage: Stage, residual: bool = True):
    """(rgb, overflow summed over the batch, most pairs any image needed). Compiled once per avatar
    model, image size, batch shape and capacity, shared by every renderer."""
    out = render_avatar(model, params, x, camera, background, capacity=capacity, backend=backend, stage=stage,
                        residual=residual)
    return out.rgb, jnp.sum(out.isect_overflow), jnp.max(out.num_isects)


@functools.partial(jax.jit, static_argnames=("model", "residual"))
def final_gaussians(model: GaussianAvatar, params: dict, x, residual: bool = True):
    """G'' of eq. 1 for a batch of frames ``x (n, D)``."""
    (_, g_final), _ = model.apply(params, x, residual=residual)
    return g_final


def uses_residual(avatar: Avatar) -> bool:
    """Whether the avatar's residual networks can output anything but 0 (a per-avatar constant,
    checked exactly on the parameter values once per parameter set)."""
    return not residual_is_zero(avatar.params)


def measure(avatar: Avatar, x, camera: Camera, pairs: bool = True) -> int:
    """Eq. 3 without the margin: the most tile pairs any image needs. ``pairs=True``: frame i is
    seen by camera i (matching leading dims); ``False``: every frame by every camera."""
    g = final_gaussians(avatar.model, avatar.params, jnp.asarray(np.atleast_2d(x), jnp.float32),
                        residual=uses_residual(avatar))
    if not pairs:
        g = jax.tree.map(lambda a: a[:, None], g)
        camera = jax.tree.map(lambda a: a[None], camera)
    return required_capacity(g, camera)


def open_mouth(space: MotionSpace) -> np.ndarray:
    """(1, D): the neutral face with every mouth-opening channel at its high end (a probe of eq. 3)."""
    x = np.zeros((1, space.size), np.float32)
    if space.mouth_weights is not None:
        w = np.asarray(space.mouth_weights)
        x[0, : space.dyn_size] = np.where(w > 0, space.high[: space.dyn_size], 0.0)
    return x


def render_checked(avatar: Avatar, x: jax.Array, camera: Camera, background, report: OverflowReport, *,
                   backend: str = "auto", stage: Stage = "final", residual: bool = True,
                   on_overflow: Literal["resize", "raise"] = "resize") -> jax.Array:
    """Eq. 2 for one batch under the capacity policy (render/capacity.py eq. 3): frames
    ``x (..., D)`` by ``camera`` (matching batch dims) in one compiled call at ``report.capacity``,
    one overflow check for the whole batch; on overflow the capacity grows and the batch is rendered
    again ("resize") or the call raises ("raise"). Returns the device array of images (never a
    truncated one)."""
    return run_checked(lambda capacity: _render_jit(avatar.model, avatar.params, x, camera, background,
                                                    capacity=capacity, backend=backend, stage=stage,
                                                    residual=residual),
                       report, on_overflow=on_overflow, what="an avatar frame")


def render_frames(avatar: Avatar, latents, camera: Camera, background=(1.0, 1.0, 1.0), *, chunk: int = 8,
                  backend: str = "auto", stage: Stage = "final",
                  report: OverflowReport | None = None) -> np.ndarray:
    """Images of frames ``latents (N, D)`` seen by cameras ``camera`` (N, ...) -> (N, H, W, 3) numpy
    (``stage="both"``: (2, N, H, W, 3), G' then G''), rendered in chunks at a capacity measured on the
    frames themselves (eq. 3) and grown on any overflow: never truncated."""
    latents = np.asarray(latents, np.float32)
    n = len(latents)
    if camera.viewmat.shape[:-2] != (n,):
        raise ValueError(f"render_frames needs one camera per frame: {n} frames, cameras {camera.viewmat.shape[:-2]}")
    report = report if report is not None else OverflowReport()
    bg = jnp.asarray(background, jnp.float32)
    residual = uses_residual(avatar)
    out = []
    for i in range(0, n, chunk):
        sl = slice(i, min(i + chunk, n))
        x = jnp.asarray(latents[sl])
        cam = jax.tree.map(lambda a: a[sl], camera)
        if report.capacity == 0:
            report.capacity = capacity_for(measure(avatar, x, cam))
        out.append(np.asarray(render_checked(avatar, x, cam, bg, report, backend=backend, stage=stage,
                                             residual=residual)))
    return np.concatenate(out, axis=1 if stage == "both" else 0)


class FrameRenderer:
    """Renders motion frames of one avatar at one square image size, ``batch`` frames per compiled
    call (vmapped over frames and cameras; one overflow check per batch, ``render_checked``).

    renderer = FrameRenderer(avatar, size=256)
    renderer.prepare(probe_motion, path, total)         # measures C once (eq. 3)
    images = renderer.render_batch(x, viewmats)         # (n, H, W, 3) float32 in [0, 1], n <= batch
    image = renderer(x_t, viewmat_t)                    # one frame (H, W, 3)

    Per-avatar constants are computed once here: the intrinsics, the background and whether the
    residual networks can output anything (``residual_is_zero``: skipped exactly when they cannot).
    """

    def __init__(self, avatar: Avatar, size: int = 256, background=(1.0, 1.0, 1.0), backend: str = "auto",
                 on_overflow: Literal["resize", "raise"] = "resize", batch: int = BATCH):
        if size < 2 or size % 2:
            raise ValueError(f"size={size} must be an even number of pixels >= 2 (H.264 needs even sizes)")
        if on_overflow not in ("resize", "raise"):
            raise ValueError(f"on_overflow={on_overflow!r}; use 'resize' or 'raise'")
        if batch < 1:
            raise ValueError(f"batch={batch} must be >= 1 frame per compiled call")
        self.avatar, self.size, self.backend, self.on_overflow = avatar, size, backend, on_overflow
        self.batch = batch
        self.background = jnp.asarray(background, jnp.float32)
        self.K = camera_intrinsics(size)
        self.residual = uses_residual(avatar)
        self.report = OverflowReport()

    @property
    def capacity(self) -> int:
        return self.report.capacity

    @capacity.setter
    def capacity(self, value: int) -> None:
        self.report.capacity = int(value)

    @property
    def resizes(self) -> int:
        return self.report.resizes

    def measure(self, x: np.ndarray, cameras: Camera) -> int:
        """Eq. 3 without the margin, every frame ``x (n, D)`` by every camera."""
        return measure(self.avatar, x, cameras, pairs=False)

    def prepare(self, x: np.ndarray, path: CameraPath, total: int | None) -> int:
        """Sets C (eq. 3) from probe motions ``x (n, D)`` plus the neutral and open-mouth faces."""
        space = self.avatar.space
        clip = np.asarray(space.neutral(1)) if x is None or not len(x) else np.asarray(x)
        # Fixed probe counts keep the shapes, so the measuring programs compile once.
        picks = np.linspace(0, len(clip) - 1, PROBE_FRAMES).round().astype(int)
        probes = [np.asarray(space.neutral(1)), open_mouth(space), clip[picks]]
        if path.kind == "orbit":
            period = path.period or total or PROBE_VIEWS
            frames = [int(round(i * period / PROBE_VIEWS)) for i in range(PROBE_VIEWS)]
        else:  # one view: every frame of a fixed camera sees the same (a stream's first-frame latency)
            frames = [0]
        need = self.measure(np.concatenate(probes), path.cameras(frames, self.size, total))
        self.report.capacity = max(self.report.capacity, capacity_for(need))
        return self.report.capacity

    def render_device(self, x, viewmats) -> jax.Array:
        """Frames ``x (n, D)`` through ``viewmats (n, 4, 4)`` -> device images (n, H, W, 3), one call."""
        if self.report.capacity <= 0:
            raise RuntimeError("call prepare(...) before rendering: the intersection capacity is not set")
        x = jnp.asarray(x, jnp.float32)
        viewmats = jnp.asarray(viewmats, jnp.float32)
        cam = Camera(viewmats, jnp.broadcast_to(self.K, (*viewmats.shape[:-2], 3, 3)), self.size, self.size)
        return render_checked(self.avatar, x, cam, self.background, self.report, backend=self.backend,
                              residual=self.residual, on_overflow=self.on_overflow)

    def render_batch(self, x: np.ndarray, viewmats: np.ndarray) -> np.ndarray:
        """Frames ``x (n, D)`` through ``viewmats (n, 4, 4)``, 1 <= n <= batch -> (n, H, W, 3) numpy.

        A short batch is padded with copies of its last frame, so every call runs the one program
        compiled for ``batch`` frames (the copies need no more capacity than the frame they copy)."""
        x = np.asarray(x, np.float32)
        viewmats = np.asarray(viewmats, np.float32)
        n = len(x)
        if not 1 <= n <= self.batch or viewmats.shape != (n, 4, 4):
            raise ValueError(f"render_batch takes 1..{self.batch} frames and one (4, 4) view each; "
                             f"got x {x.shape}, viewmats {viewmats.shape}")
        if n < self.batch:
            pad = self.batch - n
            x = np.concatenate([x, np.repeat(x[-1:], pad, 0)])
            viewmats = np.concatenate([viewmats, np.repeat(viewmats[-1:], pad, 0)])
        return np.asarray(self.render_device(x, viewmats))[:n]

    def __call__(self, x: np.ndarray, viewmat: np.ndarray) -> np.ndarray:
        """Frame ``x (D,)`` seen through ``viewmat (4, 4)`` -> (H, W, 3) float32 image in [0, 1]."""
        return np.asarray(self.render_device(np.asarray(x, np.float32)[None],
                                             np.asarray(viewmat, np.float32)[None]))[0]


# ---- motion to frames -------------------------------------------------------------------------
@dataclasses.dataclass
class RenderStats:
    """What a rendering run measured (filled in while frames are produced)."""

    frames: int = 0  # frames rendered
    wall_s: float = 0.0  # seconds from the first request to the last frame (motion included)
    motion_s: float = 0.0  # seconds spent generating motion
    render_s: float = 0.0  # seconds spent deforming and rendering (compilation included)
    capacity: int = 0  # intersection capacity in use at the end
    resizes: int = 0  # times a frame overflowed and the capacity grew

    @property
    def fps(self) -> float:
        """Frames per second, end to end."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict:
        return {"frames": self.frames, "fps": round(self.fps, 2), "wall_s": round(self.wall_s, 2),
                "motion_s": round(self.motion_s, 2), "render_s": round(self.render_s, 2),
                "capacity": self.capacity, "resizes": self.resizes}


def render_motion(avatar: Avatar, motion: np.ndarray, camera_path: CameraSpec | CameraPath = "front",
                  size: int = 256, *, background=(1.0, 1.0, 1.0), backend: str = "auto",
                  stats: RenderStats | None = None) -> Iterator[np.ndarray]:
    """Frames ``(H, W, 3)`` of ``avatar`` driven by ``motion (T, D)`` along ``camera_path``
    (eqs. 1-4, ``camera.py`` eqs. 1-2).

    A generator: frames are rendered as they are consumed. ``stats`` (optional) is filled in.
    """
    motion = np.asarray(motion, np.float32)
    if motion.ndim != 2 or motion.shape[0] == 0:
        raise ValueError(f"motion has shape {motion.shape}; expected (T > 0, D) latents, one row per frame")
    avatar.space.check(motion)
    path = CameraPath.parse(camera_path)
    renderer = FrameRenderer(avatar, size, background, backend)
    stats = stats if stats is not None else RenderStats()
    t0 = time.perf_counter()
    renderer.prepare(motion, path, len(motion))
    for images in render_blocks(renderer, motion, path, 0, len(motion)):
        stats.frames += len(images)
        stats.capacity, stats.resizes = renderer.capacity, renderer.resizes
        stats.render_s = stats.wall_s = time.perf_counter() - t0
        yield from images


def render_blocks(renderer: FrameRenderer, motion: np.ndarray, path: CameraPath, start: int,
                  total: int | None) -> Iterator[np.ndarray]:
    """Images ``(n, H, W, 3)`` of ``motion (T, D)`` (frames ``start``.. of the path), ``renderer.batch``
    frames per compiled call."""
    for s in range(0, len(motion), renderer.batch):
        x = motion[s:s + renderer.batch]
        views = np.stack([path.viewmat(start + s + i, total) for i in range(len(x))])
        yield renderer.render_batch(x, views)
