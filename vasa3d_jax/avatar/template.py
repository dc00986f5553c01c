"""The built-in template avatar and the template head's colouring.

``template_avatar`` is a head model (default: the template head) with one flat, nearly opaque
Gaussian per triangle, coloured by ``skin_colors``: an albedo per part (skin, lips, brows, mouth
interior, teeth, eye whites, iris, pupil) times a baked diffuse shading of the neutral head,

    (1) c_f = albedo_f * (AMBIENT + (1 - AMBIENT) ((1 + n_f . l) / 2)^2),

n_f the triangle normal and l = LIGHT_DIR: "half-Lambert" wrapped diffuse light (Mitchell, McTaggart
and Green, "Shading in Valve's Source Engine", SIGGRAPH 2006 course), which keeps a gradient on the
side facing away from the light, so the untextured head reads as a 3D shape from every side.

Lips and brows are the face triangles whose centroid lies inside the MediaPipe lip / brow contour
seen from the front (``_inside``, the even-odd rule: a point is inside a closed polygon when a ray
from it crosses the polygon's edges an odd number of times).
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.avatar import gaussians as gs
from vasa3d_jax.avatar.avatar import AvatarConfig, GaussianAvatar, region_colors
from vasa3d_jax.avatar.io import Avatar
from vasa3d_jax.head import HeadModel, template_head
from vasa3d_jax.head import landmarks
from vasa3d_jax.motion_space import MotionSpace

# ---- template colouring (eq. 1; albedos are sRGB values chosen by eye) -------------------------------
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
# Template avatar Gaussians: flat along the triangle normal (local axis 1, binding.py eq. 2) and
# nearly opaque, so the mesh surface renders as a closed skin.
TEMPLATE_OPACITY = 0.95
TEMPLATE_PLANE_SCALE = 0.5  # in-plane std as a fraction of the triangle scale k_f (covers it, stays sharp)
TEMPLATE_NORMAL_SCALE = 0.1  # normal-axis std as a fraction of k_f


def template_avatar(head: HeadModel | None = None, space: MotionSpace | None = None,
                    colors: Literal["skin", "regions"] | np.ndarray = "skin", seed: int = 0) -> Avatar:
    """The built-in head: one flat, nearly opaque Gaussian per triangle of ``head`` (default: the
    template head), coloured ``"skin"`` (eq. 1), ``"regions"`` (``avatar.region_colors``) or by an
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


def skin_colors(head: HeadModel) -> np.ndarray:
    """(F, 3) per-triangle RGB of eq. 1 for the template head (part albedos, baked diffuse light).

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
    part("face", LIPS, _inside(centroid[:, :2], v[lmk[list(landmarks.LIP_OUTER_RING)], :2]))
    for lower, upper in (landmarks.BROW_L, landmarks.BROW_R):
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
