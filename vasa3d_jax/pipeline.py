"""Speech -> motion -> Gaussian head -> frames: the Python API behind ``vasa3d speak`` and ``vasa3d demo``.

    from vasa3d_jax.pipeline import Talker
    talker = Talker.default()                               # shipped motion model + template head
    speech = talker.speak("speech.wav", camera_path="orbit", key=jax.random.key(0))
    video.write_mp4("talking.mp4", speech.frames, fps=speech.fps, audio=speech.audio)

    for frame in talker.stream(audio_chunks, camera_path="front"):   # online: frames as windows arrive
        ...

Per motion frame t with latent x_t = [z_dyn, z_pose] (``MotionSpace``), the pipeline evaluates

    (1) (G'_t, G''_t) = avatar.apply(params, x_t)                  base and residual deformation
    (2) I_t = render(G''_t, camera_t, capacity=C)                  gsplat semantics, fixed capacity
    (3) C = ceil(CAPACITY_MARGIN * max_{x in P, c in Q} required_capacity(G''(x), c))

with P a probe set of motions (the neutral face, the mouth wide open, and the clip's own frames when
they are known) and Q the path's cameras (or ``PROBE_VIEWS`` of them). C is a static shape, so one
compiled function renders every frame; any frame whose ``isect_overflow`` is non-zero is measured
again, C grows to cover it and the frame is re-rendered (``on_overflow="resize"``), or the call
raises (``on_overflow="raise"``): no frame is ever silently truncated.

Camera paths look at the head's pivot from distance d (head frame: y up, z out of the face):

    (4) eye(az, el) = pivot + d (sin az cos el, sin el, cos az cos el)
    (5) orbit: az_t = az_0 + 2 pi t / period,  period = the clip's length (one turn) or given

with focal length f = FOCAL_PER_SIZE * image size (a 37 degree field of view).

The built-in template avatar (``template_avatar``) is the template head with one flat, nearly opaque
Gaussian per triangle, coloured by ``skin_colors``: an albedo per part (skin, lips, brows, mouth
interior, teeth, eye whites, iris, pupil) times a baked diffuse shading of the neutral head,

    (6) c_f = albedo_f * (AMBIENT + (1 - AMBIENT) ((1 + n_f . l) / 2)^2),

n_f the triangle normal and l = LIGHT_DIR: "half-Lambert" wrapped diffuse light (Mitchell, McTaggart
and Green, "Shading in Valve's Source Engine", SIGGRAPH 2006 course), which keeps a gradient on the
side facing away from the light, so the untextured head reads as a 3D shape from every side.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import pathlib
import re
import time
from typing import Iterable, Iterator, Literal

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.avatar import AvatarConfig, GaussianAvatar, region_colors
from vasa3d_jax.avatar import gaussians as gs
from vasa3d_jax.head import HeadModel, template_head
from vasa3d_jax.head import template as tpl
from vasa3d_jax.motion import Controls, MotionGenerator, SamplerConfig, generate, load_default_model, stream
from vasa3d_jax.motion_space import MotionSpace
from vasa3d_jax.render import Camera, intrinsics, look_at, render, required_capacity

FPS = 25.0  # MotionSpace.fps: one motion frame per video frame
SAMPLE_RATE = 16000  # vasa3d_jax.audio: waveforms are 16 kHz mono

# ---- cameras ------------------------------------------------------------------------------------
# Head pivot (m): the template head spans y in [-0.215, 0.114] (neck base to crown) and z in
# [-0.095, 0.12]; aiming 3 cm below the head centre frames face and neck together.
PIVOT = (0.0, -0.03, 0.0)
DISTANCE = 0.6  # metres: with FOCAL_PER_SIZE the view is 0.4 m tall there, the head and neck fit
FOCAL_PER_SIZE = 1.5  # f = 1.5 x image size, the render benchmark's camera (experiments/bench_render.py)
ORBIT_ELEVATION_DEG = 10.0  # slightly above the eyes, as a seated viewer
STREAM_ORBIT_PERIOD_S = 8.0  # streaming has no clip length: one turn every 8 s

# ---- capacity ------------------------------------------------------------------------------------
CAPACITY_MARGIN = 1.25  # head motion within the probe set's range needs < 25% more tile pairs
CAPACITY_BUCKET = 8192  # capacities are rounded up to this step (one compiled program per step)
PROBE_VIEWS = 8  # cameras of an unbounded path (e.g. a streaming orbit) probed for the capacity
PROBE_FRAMES = 16  # motion frames of a known clip probed (evenly spaced), besides the fixed probes

# ---- template colouring (eq. 6; albedos are sRGB values chosen by eye) -------------------------------
LIGHT_DIR = (0.35, 0.45, 1.0)  # key light from the front, upper left of the viewer (head frame)
AMBIENT = 0.6  # share of the albedo that triangles facing away from the light keep
SKIN = (0.90, 0.70, 0.58)
LIPS = (0.72, 0.36, 0.38)
BROWS = (0.38, 0.26, 0.19)
MOUTH_INTERIOR = (0.38, 0.10, 0.12)
TEETH = (0.96, 0.95, 0.90)
EYE_SOCKET = (0.78, 0.52, 0.48)
EYE_WHITE = (0.97, 0.97, 0.95)
IRIS = (0.36, 0.24, 0.14)
PUPIL = (0.04, 0.04, 0.04)
IRIS_RADIUS_M = 0.006  # adult visible iris diameter ~ 12 mm
PUPIL_RADIUS_M = 0.002  # pupil diameter ~ 4 mm in room light
LIP_OUTER_CORNERS = (61, 291)  # MediaPipe face mesh, face_mesh_connections.py: FACEMESH_LIPS outer corners
# MediaPipe face mesh, face_mesh_connections.py: FACEMESH_LEFT_EYEBROW / FACEMESH_RIGHT_EYEBROW, each
# a lower and an upper line from the inner to the outer end.
BROW_L = ((285, 295, 282, 283, 276), (336, 296, 334, 293, 300))
BROW_R = ((55, 65, 52, 53, 46), (107, 66, 105, 63, 70))
# Template avatar Gaussians: flat along the triangle normal (local axis 1, binding.py eq. 2) and
# nearly opaque, so the mesh surface renders as a closed skin.
TEMPLATE_OPACITY = 0.95
TEMPLATE_PLANE_SCALE = 0.5  # in-plane std as a fraction of the triangle scale k_f (covers it, stays sharp)
TEMPLATE_NORMAL_SCALE = 0.1  # normal-axis std as a fraction of k_f

CameraSpec = str | tuple[float, float]
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"  # a decimal number, as float() reads it


# ---- camera paths ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class CameraPath:
    """Where the camera is at each frame (eqs. 4-5); angles in degrees.

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
        """(azimuth, elevation) in degrees of frame ``t`` of a clip of ``total`` frames (eq. 5)."""
        if self.kind != "orbit":
            return self.azimuth, self.elevation
        period = self.period or total
        if not period:
            raise ValueError("an orbit needs a period (frames per turn) when the clip length is unknown")
        return self.azimuth + 360.0 * t / period, self.elevation

    def viewmat(self, t: int, total: int | None) -> np.ndarray:
        """World->camera 4x4 of frame ``t`` (eq. 4)."""
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
    """K of the pipeline's square camera (focal length FOCAL_PER_SIZE * size, centred)."""
    f = FOCAL_PER_SIZE * size
    return intrinsics(f, f, size / 2, size / 2)


# ---- avatars --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Avatar:
    """A Gaussian head ready to drive: the model (static) and its full parameters (with the binding)."""

    model: GaussianAvatar  # head model, motion space, AvatarConfig
    params: dict  # GaussianAvatar parameters, "binding" included

    @property
    def space(self) -> MotionSpace:
        return self.model.space


def template_avatar(head: HeadModel | None = None, space: MotionSpace | None = None,
                    colors: Literal["skin", "regions"] | np.ndarray = "skin", seed: int = 0) -> Avatar:
    """The built-in head: one flat, nearly opaque Gaussian per triangle of ``head`` (default: the
    template head), coloured ``"skin"`` (eq. 6), ``"regions"`` (``avatar.region_colors``) or by an
    (F, 3) array. Nothing is fitted: the residual networks output exactly zero (their output layers
    start at zero), so they are built at the smallest size, which changes no pixel and saves the
    per-frame cost of two 256-wide MLPs over every Gaussian."""
    if head is None and space is None and isinstance(colors, str):
        return _default_template_avatar(colors, seed)
    return _template_avatar(head or template_head(), space or MotionSpace.builtin(), colors, seed)


@functools.lru_cache(maxsize=4)
def _default_template_avatar(colors: str, seed: int) -> Avatar:
    """The default template avatars are built once per process, so their compiled programs are shared."""
    return _template_avatar(template_head(), MotionSpace.builtin(), colors, seed)


def _template_avatar(head: HeadModel, space: MotionSpace, colors, seed: int) -> Avatar:
    if isinstance(colors, str):
        if colors not in ("skin", "regions"):
            raise ValueError(f"colors={colors!r}; use 'skin', 'regions' or an (F, 3) array")
        colors = skin_colors(head) if colors == "skin" else region_colors(head)
    colors = np.asarray(colors, np.float32)
    if colors.shape != (head.num_faces, 3):
        raise ValueError(f"colors must be (F, 3) = ({head.num_faces}, 3), one RGB per triangle; got {colors.shape}")
    model = GaussianAvatar(head, space, AvatarConfig(residual_width=8, residual_depth=1))
    params = model.init(jax.random.key(seed), colors=colors)
    g, b = params["gaussians"], params["binding"]
    live = b.active
    opacity = jnp.where(live, gs.logit(TEMPLATE_OPACITY), g.opacity_logits)
    shrink = jnp.log(jnp.asarray([TEMPLATE_PLANE_SCALE, TEMPLATE_NORMAL_SCALE, TEMPLATE_PLANE_SCALE]))
    log_scales = jnp.where(live[:, None], g.log_scales + shrink, g.log_scales)
    params = {**params, "gaussians": g.replace(opacity_logits=opacity, log_scales=log_scales)}
    return Avatar(model, params)


def save_avatar(avatar: Avatar, path: str | os.PathLike) -> pathlib.Path:
    """Writes ``path`` (.npz): every parameter array by its pytree path, plus the avatar's
    configuration and head kind as JSON (e.g. ``save_avatar(Avatar(fit.avatar, fit.params), p)``)."""
    path = pathlib.Path(path).with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    leaves, _ = jax.tree_util.tree_flatten_with_path(jax.device_get(avatar.params))
    arrays = {jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}
    meta = {"head": avatar.model.head.kind, "config": dataclasses.asdict(avatar.model.config),
            "space": "builtin" if avatar.space == MotionSpace.builtin() else
            {"dyn_size": avatar.space.dyn_size, "mouth_weights": avatar.space.mouth_weights}}
    np.savez(path, __meta__=np.asarray(json.dumps(meta)), **arrays)
    return path


def load_avatar(path: str | os.PathLike, head: HeadModel | None = None) -> Avatar:
    """Reads an avatar written by ``save_avatar``. ``head``: the head model it was made on (default:
    the template head; a FLAME avatar needs ``head=load_flame(...)``)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"avatar file {str(path)!r} not found; write one with "
                                "vasa3d_jax.pipeline.save_avatar, or leave --avatar out for the template head")
    with np.load(path, allow_pickle=False) as z:
        if "__meta__" not in z.files:
            raise ValueError(f"{path} is not an avatar file written by vasa3d_jax.pipeline.save_avatar")
        meta = json.loads(str(z["__meta__"]))
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    if head is None:
        if meta["head"] != "template":
            raise ValueError(f"{path} was fitted on a {meta['head']!r} head; pass that head model: "
                             "load_avatar(path, head=load_flame(...))")
        head = template_head()
    config = AvatarConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()})
    sp = meta["space"]
    space = MotionSpace.builtin() if sp == "builtin" else MotionSpace.learned(sp["dyn_size"], sp["mouth_weights"])
    model = GaussianAvatar(head, space, config)
    abstract = jax.eval_shape(model.init, jax.random.key(0))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    missing = [jax.tree_util.keystr(k) for k, _ in leaves if jax.tree_util.keystr(k) not in arrays]
    if missing:
        raise ValueError(f"{path} lacks the parameters {missing[:5]}; was it written for another avatar version?")
    params = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(arrays[jax.tree_util.keystr(k)]) for k, _ in leaves])
    return Avatar(model, params)


def skin_colors(head: HeadModel) -> np.ndarray:
    """(F, 3) per-triangle RGB of eq. 6 for the template head (part albedos, baked diffuse light).

    Parts: lips and brows are face triangles whose centroid falls inside the MediaPipe lip / brow
    contour seen from the front; eyeball triangles (skinned to an eye joint) are white, iris or pupil
    by the angle between the triangle's direction from the eyeball centre and the gaze (+z).
    """
    if head.kind != "template":
        raise ValueError("skin_colors knows the template head's parts; for FLAME use avatar.region_colors "
                         "or fit the avatar's colours")
    v = np.asarray(head.v_template, np.float64)
    f = np.asarray(head.faces)
    region = np.asarray(head.face_region)
    names = head.region_names
    tri = v[f]
    centroid = tri.mean(1)
    albedo = np.tile(np.asarray(SKIN), (len(f), 1))

    def part(region_name, color, mask=None):
        sel = region == names.index(region_name)
        albedo[sel if mask is None else sel & mask] = color

    lmk = np.asarray(head.landmark_vertices)
    lips = [LIP_OUTER_CORNERS[0], *tpl.LIP_OUTER_UPPER, LIP_OUTER_CORNERS[1], *tpl.LIP_OUTER_LOWER[::-1]]
    part("face", LIPS, _inside(centroid[:, :2], v[lmk[lips], :2]))
    for lower, upper in (BROW_L, BROW_R):
        part("face", BROWS, _inside(centroid[:, :2], v[lmk[list(lower) + list(upper[::-1])], :2]))
    part("mouth", MOUTH_INTERIOR)
    part("teeth", TEETH)
    part("eyes", EYE_SOCKET)
    weights = np.asarray(head.lbs_weights)
    joints = np.asarray(head.j_regressor) @ v
    for j in (3, 4):  # head.JOINTS: eye_l, eye_r
        ball = weights[f, j].min(1) > 0.5
        d = centroid[ball] - joints[j]
        radius = np.linalg.norm(v[np.unique(f[ball])] - joints[j], axis=1).mean()
        off_axis = np.linalg.norm(d[:, :2], axis=1) * (d[:, 2] > 0) + radius * (d[:, 2] <= 0)
        colour = np.where((off_axis < PUPIL_RADIUS_M)[:, None], PUPIL,
                          np.where((off_axis < IRIS_RADIUS_M)[:, None], IRIS, EYE_WHITE))
        albedo[ball] = colour
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    light = np.asarray(LIGHT_DIR) / np.linalg.norm(LIGHT_DIR)
    shade = AMBIENT + (1 - AMBIENT) * ((1 + normal @ light) / 2) ** 2
    return (albedo * shade[:, None]).astype(np.float32)


def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: even-odd rule, points (N, 2) against a closed polygon (M, 2)."""
    x, y = points[:, 0:1], points[:, 1:2]
    a, b = polygon, np.roll(polygon, -1, axis=0)
    crosses = (a[:, 1] > y) != (b[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return np.sum(crosses & (x < x_at), axis=1) % 2 == 1


# ---- rendering ------------------------------------------------------------------------------------
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


class FrameRenderer:
    """Renders motion frames of one avatar at one image size (eqs. 1-3), one compiled call per frame.

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

    def final_gaussians(self, x: np.ndarray):
        """G'' (eq. 1) for motion frames ``x (n, D)``."""
        return _final_gaussians(self.avatar.model, self.avatar.params, jnp.asarray(x, jnp.float32))

    def measure(self, x: np.ndarray, cameras: Camera) -> int:
        """Eq. 3 without the margin: the most tile pairs any (motion frame, camera) pair needs."""
        g = self.final_gaussians(np.atleast_2d(x))
        g = jax.tree.map(lambda a: a[:, None], g)
        cams = jax.tree.map(lambda a: a[None], cameras)
        return required_capacity(g, cams)

    def prepare(self, x: np.ndarray, path: CameraPath, total: int | None) -> int:
        """Sets C (eq. 3) from probe motions ``x (n, D)`` plus the neutral and open-mouth faces."""
        space = self.avatar.space
        clip = np.asarray(space.neutral(1)) if x is None or not len(x) else np.asarray(x)
        # Fixed probe counts keep the shapes, so the measuring programs compile once.
        picks = np.linspace(0, len(clip) - 1, PROBE_FRAMES).round().astype(int)
        probes = [np.asarray(space.neutral(1)), _open_mouth(space), clip[picks]]
        if path.kind == "orbit":
            period = path.period or total or PROBE_VIEWS
            frames = [int(round(i * period / PROBE_VIEWS)) for i in range(PROBE_VIEWS)]
        else:
            frames = [0] * PROBE_VIEWS
        need = self.measure(np.concatenate(probes), path.cameras(frames, self.size, total))
        self.capacity = max(self.capacity, _bucket(CAPACITY_MARGIN * need))
        return self.capacity

    def _frame(self, x, viewmat):
        return _render_frame(self.avatar.model, self.avatar.params, x, viewmat, self.K, self.background,
                             size=self.size, capacity=self.capacity, backend=self.backend)

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
            self.capacity = _bucket(CAPACITY_MARGIN * int(need))
            self.resizes += 1
            rgb, overflow, need = self._frame(x, viewmat)
            if int(overflow):
                raise RuntimeError(f"frame still overflows at capacity {self.capacity} ({int(need)} pairs)")
        return np.asarray(rgb)


@functools.partial(jax.jit, static_argnames=("model",))
def _final_gaussians(model: GaussianAvatar, params: dict, x):
    """G'' of eq. 1 for a batch of frames ``x (n, D)``."""
    (_, g_final), _ = model.apply(params, x)
    return g_final


@functools.partial(jax.jit, static_argnames=("model", "size", "capacity", "backend"))
def _render_frame(model: GaussianAvatar, params: dict, x, viewmat, K, background, *, size: int, capacity: int,
                  backend: str):
    """Eqs. 1-2 for one frame: (rgb (H, W, 3), isect_overflow, num_isects). Compiled once per avatar
    model, image size and capacity, shared by every renderer."""
    (_, g_final), _ = model.apply(params, x)
    out = render(g_final, Camera(viewmat, K, size, size), background, backend, capacity=capacity)
    return out.rgb, out.isect_overflow, out.num_isects


def _bucket(pairs: float) -> int:
    """Capacity rounded up to a multiple of CAPACITY_BUCKET, so similar clips share one compilation."""
    return max(1, math.ceil(pairs / CAPACITY_BUCKET)) * CAPACITY_BUCKET


def _open_mouth(space: MotionSpace) -> np.ndarray:
    """(1, D): the neutral face with every mouth-opening channel at its high end."""
    x = np.zeros((1, space.size), np.float32)
    if space.mouth_weights is not None:
        w = np.asarray(space.mouth_weights)
        x[0, : space.dyn_size] = np.where(w > 0, space.high[: space.dyn_size], 0.0)
    return x


def render_motion(avatar: Avatar, motion: np.ndarray, camera_path: CameraSpec | CameraPath = "front",
                  size: int = 256, *, background=(1.0, 1.0, 1.0), backend: str = "auto",
                  stats: RenderStats | None = None) -> Iterator[np.ndarray]:
    """Frames ``(H, W, 3)`` of ``avatar`` driven by ``motion (T, D)`` along ``camera_path`` (eqs. 1-5).

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
    for t, x in enumerate(motion):
        image = renderer(x, path.viewmat(t, len(motion)))
        stats.frames += 1
        stats.capacity, stats.resizes = renderer.capacity, renderer.resizes
        stats.render_s = stats.wall_s = time.perf_counter() - t0
        yield image


# ---- speech to video ---------------------------------------------------------------------------
@dataclasses.dataclass
class Speech:
    """What ``Talker.speak`` returns: the motion (known at once) and the frames (rendered lazily)."""

    motion: np.ndarray  # (T, D) motion latents at ``fps``
    frames: Iterator[np.ndarray]  # T frames (H, W, 3), rendered as they are consumed
    audio: np.ndarray  # (n,) float32 16 kHz mono waveform the motion was made from
    fps: float  # frames per second of motion and video
    stats: RenderStats  # timings, filled in while ``frames`` is consumed


class Talker:
    """An avatar, a motion generator and a renderer: speech in, talking-head frames out.

    avatar: a driven Gaussian head (``template_avatar()`` or a user's fitted one); generator: a
    ``MotionGenerator`` in the same motion space; size: square image side in pixels.
    """

    def __init__(self, avatar: Avatar, generator: MotionGenerator, *, size: int = 256,
                 background=(1.0, 1.0, 1.0), sampler: SamplerConfig | None = None, backend: str = "auto"):
        if generator.space != avatar.space:
            raise ValueError(f"the motion generator's space ({generator.space.size} channels) differs from the "
                             f"avatar's ({avatar.space.size}); use a generator trained in the avatar's space")
        self.avatar, self.generator, self.size = avatar, generator, size
        self.background, self.sampler, self.backend = background, sampler or generator.sampler, backend

    @classmethod
    def default(cls, **kwargs) -> "Talker":
        """The shipped motion model driving the built-in template head (skin colouring)."""
        return cls(template_avatar(), load_default_model(), **kwargs)

    def features(self, wav: np.ndarray) -> np.ndarray:
        """Speech features ``(T, F)`` at 25 fps from the generator's own encoder."""
        from vasa3d_jax.audio import speech_features

        return speech_features(wav, fps=FPS, encoder=self.generator.feature_encoder)

    def speak(self, audio, camera_path: CameraSpec | CameraPath = "front", controls: Controls | None = None,
              key: jax.Array | None = None) -> Speech:
        """Motion for all of ``audio`` (a file path, or a 16 kHz waveform), then frames lazily.

        Deterministic for a ``key`` (default ``jax.random.key(0)``).
        """
        path = CameraPath.parse(camera_path)  # a bad camera fails before any work
        wav = load_waveform(audio)
        stats = RenderStats()
        t0 = time.perf_counter()
        motion = generate(self.generator, self.features(wav), controls, key, self.sampler)
        stats.motion_s = time.perf_counter() - t0

        def frames():
            inner = RenderStats()
            for image in render_motion(self.avatar, motion, path, self.size, background=self.background,
                                       backend=self.backend, stats=inner):
                stats.frames, stats.capacity, stats.resizes = inner.frames, inner.capacity, inner.resizes
                stats.render_s = inner.render_s
                stats.wall_s = time.perf_counter() - t0
                yield image

        return Speech(motion=motion, frames=frames(), audio=wav, fps=FPS, stats=stats)

    def stream(self, chunks: Iterable[np.ndarray], camera_path: CameraSpec | CameraPath = "front",
               controls: Controls | None = None, key: jax.Array | None = None, *,
               stats: RenderStats | None = None, motion_out: list | None = None) -> Iterator[np.ndarray]:
        """Online: consecutive 16 kHz waveform chunks in, frames out as each motion window arrives.

        Motion comes from ``motion.stream`` (a window of W frames per W / 25 s of audio, the last one
        shorter); an orbit without a period turns once every ``STREAM_ORBIT_PERIOD_S``. ``stats``
        (optional) is filled in; ``motion_out`` (optional list) receives each motion block ``(n, D)``.
        """
        from vasa3d_jax.audio import speech_features

        path = CameraPath.parse(camera_path)
        if path.kind == "orbit" and path.period is None:
            path = dataclasses.replace(path, period=STREAM_ORBIT_PERIOD_S * FPS)
        stats = stats if stats is not None else RenderStats()
        renderer = FrameRenderer(self.avatar, self.size, self.background, self.backend)
        encoder = self.generator.feature_encoder

        def feature_fn(wav):
            return speech_features(wav, fps=FPS, encoder=encoder)

        blocks = stream(self.generator, (np.asarray(c, np.float32) for c in chunks), controls, key,
                        self.sampler, feature_fn=feature_fn)
        t0 = time.perf_counter()
        t = 0
        while True:
            t_motion = time.perf_counter()
            block = next(blocks, None)
            stats.motion_s += time.perf_counter() - t_motion
            if block is None:
                return
            if motion_out is not None:
                motion_out.append(block)
            t_render = time.perf_counter()
            if renderer.capacity == 0:
                renderer.prepare(block, path, None)
            stats.render_s += time.perf_counter() - t_render
            for x in block:
                t_render = time.perf_counter()
                image = renderer(x, path.viewmat(t, None))
                t += 1
                stats.render_s += time.perf_counter() - t_render
                stats.frames, stats.capacity, stats.resizes = t, renderer.capacity, renderer.resizes
                stats.wall_s = time.perf_counter() - t0
                yield image


def load_waveform(audio) -> np.ndarray:
    """A file path or a 16 kHz float waveform -> (n,) float32 16 kHz mono, with clear errors."""
    from vasa3d_jax.audio import load_audio

    if isinstance(audio, (str, os.PathLike)):
        if not pathlib.Path(audio).is_file():
            raise FileNotFoundError(f"audio file {str(audio)!r} not found; pass an existing speech file "
                                    "(wav, flac, mp3, m4a, ...)")
        wav = load_audio(audio)
    else:
        wav = load_audio(np.asarray(audio, np.float32), SAMPLE_RATE)
    if wav.shape[0] < SAMPLE_RATE // int(FPS):
        raise ValueError(f"the audio lasts {wav.shape[0] / SAMPLE_RATE:.3f} s; need at least one frame "
                         f"({1 / FPS:.2f} s) of speech")
    return wav


def save_speech(speech: Speech, out_dir: str | os.PathLike, video_name: str = "talking.mp4",
                sheet_frames: int = 12) -> dict:
    """Renders ``speech.frames`` into ``out_dir/video_name`` (H.264 with the speech as AAC), writes
    ``contact_sheet.png`` (``sheet_frames`` evenly spaced frames) and ``motion.npy``; returns a summary."""
    from vasa3d_jax import video

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total = len(speech.motion)
    picks = set(np.linspace(0, total - 1, min(sheet_frames, total)).round().astype(int).tolist())
    sheet: list[np.ndarray] = []

    def keep(frames):
        for t, image in enumerate(frames):
            if t in picks:
                sheet.append(image)
            yield image

    mp4 = video.write_mp4(out / video_name, keep(speech.frames), fps=speech.fps, audio=speech.audio,
                          sample_rate=SAMPLE_RATE)
    png = video.save_png(out / "contact_sheet.png", video.contact_sheet(np.stack(sheet)))
    np.save(out / "motion.npy", speech.motion)
    return {"folder": str(out), "video": str(mp4), "contact_sheet": str(png), "motion": str(out / "motion.npy"),
            "audio_s": round(speech.audio.shape[0] / SAMPLE_RATE, 3), **speech.stats.summary()}
