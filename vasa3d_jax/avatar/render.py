"""Driving and rendering an avatar, with the one intersection-capacity policy of the code base.

Per motion frame x and camera c (``Avatar``: a ``GaussianAvatar`` and its parameters):

    (1) (G', G'') = avatar.apply(params, x)                      base and residual deformation
    (2) I = render(G'', c, capacity=C)                            gsplat semantics, fixed capacity
    (3) C = bucket(CAPACITY_MARGIN * max_{x in P, c in Q} required_capacity(G''(x), c))
    (4) bucket(p) = CAPACITY_BUCKET * ceil(p / CAPACITY_BUCKET)

C is a static shape, so one compiled function renders every frame of a run. The probe set P and the
cameras Q are what the caller knows: a clip's frames plus the neutral face and the mouth wide open
(``FrameRenderer.prepare``), a path's cameras (``PROBE_VIEWS`` of an unbounded one), or the very
frames of a batch (``render_frames``, ``fit``'s training views). Whenever a render reports
``isect_overflow`` > 0, C grows to bucket(margin * what it needed) and the render is done again
(``on_overflow="resize"``), or the call raises (``"raise"``): no image is ever used truncated. The
pipeline, the fitting step (``fit/trainer.py``), the fitting data (``fit/data.render_dataset``) and
the previews all size and check their renders here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.avatar.avatar import GaussianAvatar
from vasa3d_jax.avatar.io import Avatar
from vasa3d_jax.camera import CameraPath, camera_intrinsics
from vasa3d_jax.motion_space import MotionSpace
from vasa3d_jax.render import Camera, RenderOutput, render, required_capacity

CAPACITY_MARGIN = 1.25  # head motion within the probe set's range needs < 25% more tile pairs
CAPACITY_BUCKET = 8192  # capacities are rounded up to this step (one compiled program per step)
PROBE_VIEWS = 8  # cameras of an unbounded path (e.g. a streaming orbit) probed for the capacity
PROBE_FRAMES = 16  # motion frames of a known clip probed (evenly spaced), besides the fixed probes

Stage = Literal["final", "both"]


def capacity_for(pairs: float) -> int:
    """Eqs. 3-4: the capacity for a measured need of ``pairs`` (Gaussian, tile) pairs."""
    return max(1, math.ceil(CAPACITY_MARGIN * pairs / CAPACITY_BUCKET)) * CAPACITY_BUCKET


def render_avatar(model: GaussianAvatar, params: dict, x: jax.Array, camera: Camera, background, *,
                  capacity: int, backend: str = "auto", stage: Stage = "final") -> RenderOutput:
    """Eqs. 1-2, pure and jittable: frames ``x (..., D)`` seen by ``camera`` (matching batch dims).

    stage: "final" renders G''; "both" renders G' and G'' stacked on a new leading axis of 2.
    Check ``isect_overflow`` of the result (``FrameRenderer`` and ``render_frames`` do).
    """
    (g_base, g_final), _ = model.apply(params, x)
    g = g_final if stage == "final" else jax.tree.map(lambda a, b: jnp.stack([a, b]), g_base, g_final)
    return render(g, camera, jnp.asarray(background, jnp.float32), backend, capacity=capacity)


@functools.partial(jax.jit, static_argnames=("model", "capacity", "backend", "stage"))
def _render_jit(model: GaussianAvatar, params: dict, x, camera: Camera, background, *, capacity: int,
                backend: str, stage: Stage):
    """(rgb, overflow summed over the batch, most pairs any image needed). Compiled once per avatar
    model, image size, batch shape and capacity, shared by every renderer."""
    out = render_avatar(model, params, x, camera, background, capacity=capacity, backend=backend, stage=stage)
    return out.rgb, jnp.sum(out.isect_overflow), jnp.max(out.num_isects)


@functools.partial(jax.jit, static_argnames=("model",))
def final_gaussians(model: GaussianAvatar, params: dict, x):
    """G'' of eq. 1 for a batch of frames ``x (n, D)``."""
    (_, g_final), _ = model.apply(params, x)
    return g_final


def measure(avatar: Avatar, x, camera: Camera, pairs: bool = True) -> int:
    """Eq. 3 without the margin: the most tile pairs any image needs. ``pairs=True``: frame i is
    seen by camera i (matching leading dims); ``False``: every frame by every camera."""
    g = final_gaussians(avatar.model, avatar.params, jnp.asarray(np.atleast_2d(x), jnp.float32))
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


@dataclasses.dataclass
class OverflowReport:
    """What a rendering run did about capacity: the capacity at the end and how often it grew."""

    capacity: int = 0
    resizes: int = 0


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
    out = []
    for i in range(0, n, chunk):
        sl = slice(i, min(i + chunk, n))
        x = jnp.asarray(latents[sl])
        cam = jax.tree.map(lambda a: a[sl], camera)
        if report.capacity == 0:
            report.capacity = capacity_for(measure(avatar, x, cam))
        for attempt in range(2):
            rgb, overflow, need = _render_jit(avatar.model, avatar.params, x, cam, bg, capacity=report.capacity,
                                              backend=backend, stage=stage)
            if not int(overflow):
                break
            if attempt:
                raise RuntimeError(f"frames still overflow at capacity {report.capacity} ({int(need)} pairs)")
            report.capacity = capacity_for(int(need))
            report.resizes += 1
        out.append(np.asarray(rgb))
    return np.concatenate(out, axis=1 if stage == "both" else 0)


class FrameRenderer:
    """Renders motion frames of one avatar at one square image size, one compiled call per frame.

    renderer = FrameRenderer(avatar, size=256)
    renderer.prepare(probe_motion, path, total)         # measures C once (eq. 3)
    image = renderer(x_t, viewmat_t)                    # (H, W, 3) float32 in [0, 1]
    """

    def __init__(self, avatar: Avatar, size: int = 256, background=(1.0, 1.0, 1.0), backend: str = "auto",
                 on_overflow: Literal["resize", "raise"] = "resize"):
        if size < 2 or size % 2:
            raise ValueError(f"size={size} must be an even number of pixels >= 2 (H.264 needs even sizes)")
        if on_overflow not in ("resize", "raise"):
            raise ValueError(f"on_overflow={on_overflow!r}; use 'resize' or 'raise'")
        self.avatar, self.size, self.backend, self.on_overflow = avatar, size, backend, on_overflow
        self.background = jnp.asarray(background, jnp.float32)
        self.K = camera_intrinsics(size)
        self.capacity = 0
        self.resizes = 0

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
        else:
            frames = [0] * PROBE_VIEWS
        need = self.measure(np.concatenate(probes), path.cameras(frames, self.size, total))
        self.capacity = max(self.capacity, capacity_for(need))
        return self.capacity

    def _frame(self, x, viewmat):
        cam = Camera(viewmat, self.K, self.size, self.size)
        return _render_jit(self.avatar.model, self.avatar.params, x, cam, self.background,
                           capacity=self.capacity, backend=self.backend, stage="final")

    def __call__(self, x: np.ndarray, viewmat: np.ndarray) -> np.ndarray:
        """Frame ``x (D,)`` seen through ``viewmat (4, 4)`` -> (H, W, 3) float32 image in [0, 1]."""
        if self.capacity <= 0:
            raise RuntimeError("call prepare(...) before rendering: the intersection capacity is not set")
        x = jnp.asarray(x, jnp.float32)
        viewmat = jnp.asarray(viewmat, jnp.float32)
        rgb, overflow, need = self._frame(x, viewmat)
        if int(overflow):
            if self.on_overflow == "raise":
                raise RuntimeError(f"frame needs {int(need)} (Gaussian, tile) pairs but the capacity is "
                                   f"{self.capacity}; pass on_overflow='resize' or probe with this motion")
            self.capacity = capacity_for(int(need))
            self.resizes += 1
            rgb, overflow, need = self._frame(x, viewmat)
            if int(overflow):
                raise RuntimeError(f"frame still overflows at capacity {self.capacity} ({int(need)} pairs)")
        return np.asarray(rgb)
