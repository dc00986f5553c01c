"""A synthetic portrait whose truth is known, for tests and experiments.

A textured variant of the template head (``avatar.template.skin_colors`` times a procedural 3D pattern, so
that photo detail has something to carry) is rendered with our renderer at a known latent and
camera. Its landmarks are the template's 468 face vertices projected into that view, its person
mask the render's alpha, its identity zero. The same avatar rendered at any other latent and camera
is the ground truth a synthesiser should reproduce where the photo saw the surface.

    (1) c_g = skin_f * (1 - PATTERN_DEPTH + PATTERN_DEPTH * (0.5 + 0.5 sin(k . p_g + phase)))
        p_g the Gaussian's rest position, two plane waves of wavelength 1.6 cm and 2.2 cm
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.avatar import binding as bnd
from vasa3d_jax.camera import intrinsics, project_points, sphere_viewmat
from vasa3d_jax.head import template_head
from vasa3d_jax.motion_space import MotionSpace
from vasa3d_jax.render import Camera, render
from vasa3d_jax.render.capacity import OverflowReport, capacity_for, required_capacity, run_checked

PATTERN_DEPTH = 0.35
WAVES = ((2 * np.pi / 0.016, (0.8, 0.5, 0.33)), (2 * np.pi / 0.022, (-0.3, 0.9, 0.3)))
PER_TRIANGLE = 4
PLANE, NORMAL = 0.8, 0.1  # local scales of the truth's Gaussians (x the per-triangle 1/2)
DISTANCE = 0.5  # metres from the camera to the head centre
FOCAL_PER_SIZE = 1.5  # f = 1.5 x image size (camera.FOCAL_PER_SIZE)
HEAD_CENTRE = (0.0, -0.01, 0.0)  # the point the cameras look at (m)


@dataclasses.dataclass(frozen=True)
class SyntheticPortrait:
    """image (H, W, 3); person (H, W) alpha; landmarks (468, 3) px (z = camera depth, m);
    latent (D,); shape (3V,) zeros; camera; avatar: the textured truth (``avatar.io.Avatar``)."""

    image: np.ndarray
    person: np.ndarray
    landmarks: np.ndarray
    latent: np.ndarray
    shape: np.ndarray
    camera: Camera
    avatar: object


def camera_at(azimuth_deg: float, elevation_deg: float = 0.0, size: int = 256,
              distance: float = DISTANCE) -> Camera:
    """A camera on a sphere around the head centre looking at it (``camera.sphere_viewmat``)."""
    f = FOCAL_PER_SIZE * size
    view = sphere_viewmat(azimuth_deg, elevation_deg, distance, pivot=HEAD_CENTRE)
    return Camera(viewmat=jnp.asarray(view), K=intrinsics(f, f, size / 2, size / 2), width=size, height=size)


def default_latent(space: MotionSpace) -> np.ndarray:
    """A mild smile, raised brows, a slight turn and tilt: the synthetic photo's expression."""
    x = np.zeros(space.size, np.float32)
    for name, v in (("AU12", 0.6), ("AU06", 0.3), ("AU01", 0.3), ("rot_y", 0.12), ("rot_x", 0.05)):
        x[space.index(name)] = v
    return x


@functools.lru_cache(maxsize=2)
def truth_avatar(seed: int = 0):
    """The textured template avatar (eq. 1)."""
    from vasa3d_jax.avatar import gaussians as gs
    from vasa3d_jax.avatar import AvatarConfig, GaussianAvatar
    from vasa3d_jax.avatar.io import Avatar
    from vasa3d_jax.avatar.template import skin_colors
    head = template_head()
    space = MotionSpace.builtin()
    model = GaussianAvatar(head, space, AvatarConfig(per_triangle=PER_TRIANGLE, residual_width=8,
                                                     residual_depth=1))
    params = model.init(jax.random.key(seed))
    g, b = params["gaussians"], params["binding"]
    neutral = model.neutral_vertices(params["shape"])
    frames = bnd.gather_frames(bnd.triangle_frames(neutral, model.faces), b.parent)
    p, _, _ = bnd.local_to_world(g.means_local, g.quats_local, g.log_scales, frames)
    p = np.asarray(p)
    pattern = np.zeros(len(p))
    for k, d in WAVES:
        pattern += 0.5 + 0.5 * np.sin(k * p @ (np.asarray(d) / np.linalg.norm(d)))
    pattern /= len(WAVES)
    base = skin_colors(head)[np.asarray(b.parent)]
    col = base * (1 - PATTERN_DEPTH + PATTERN_DEPTH * pattern[:, None])
    live = b.active
    shrink = jnp.log(jnp.asarray([PLANE, NORMAL, PLANE]))
    g = g.replace(colors=jnp.asarray(col, jnp.float32),
                  opacity_logits=jnp.where(live, gs.logit(0.99), g.opacity_logits),
                  log_scales=jnp.where(live[:, None], g.log_scales + shrink, g.log_scales))
    return Avatar(model, {**params, "gaussians": g})


@functools.partial(jax.jit, static_argnames=("capacity",))
def _render(g, cameras: Camera, background, *, capacity: int):
    out = render(g, cameras, background, capacity=capacity)
    return (out.rgb, out.alpha), out.isect_overflow, out.num_isects


def render_truth(latents, cameras: Camera, background=(1.0, 1.0, 1.0)):
    """The truth avatar at latents (N, D) and cameras (batched, N) -> (rgb (N, H, W, 3), alpha),
    sized by the one capacity policy (``render/capacity.py``)."""
    av = truth_avatar()
    (_, g), _ = av.model.apply(av.params, jnp.asarray(latents, jnp.float32))
    bg = jnp.asarray(background, jnp.float32)
    report = OverflowReport(capacity_for(required_capacity(g, cameras)))
    rgb, alpha = run_checked(lambda cap: _render(g, cameras, bg, capacity=cap), report, what="the truth render")
    return np.asarray(rgb), np.asarray(alpha)


def synthetic_portrait(size: int = 256, azimuth_deg: float = 8.0,
                       background=(1.0, 1.0, 1.0)) -> SyntheticPortrait:
    """The synthetic photo (module docstring) at ``size`` x ``size`` pixels."""
    from vasa3d_jax.portrait.model import posed_vertices
    from vasa3d_jax.head.prior import base_priors
    space = MotionSpace.builtin()
    head = template_head()
    x = default_latent(space)
    cam = camera_at(azimuth_deg, 0.0, size)
    batched = Camera(viewmat=cam.viewmat[None], K=cam.K[None], width=size, height=size)
    rgb, alpha = render_truth(x[None], batched, background)
    shape = np.zeros(head.num_shape, np.float32)
    p_exp, p_pose = base_priors(space, head)
    verts = posed_vertices(head, jnp.asarray(shape), p_exp, p_pose, space, jnp.asarray(x))
    xy, z = project_points(verts[:468], cam.viewmat, cam.K)
    lm = np.concatenate([np.asarray(xy), np.asarray(z)[:, None]], 1)
    return SyntheticPortrait(image=rgb[0], person=alpha[0], landmarks=lm, latent=x, shape=shape,
                             camera=cam, avatar=truth_avatar())
