"""The portrait model: one photo, the head fitted to it, and the photo carried onto that head.

A ``PortraitModel`` is everything the training-frame synthesiser (synth.py) and the initial Gaussian
avatar need, in the head model's frame (metres, y up, z out of the face):

* the identity-fitted head (template head + per-vertex identity offsets ``shape``, which include the
  hair shell of hair.py), and the linear base-deformation priors P_e, P_p of ``head.prior.base_priors``,
  so that a motion latent x = [z_dyn, z_pose] poses it exactly as an untrained ``GaussianAvatar``:

    (1) e = z_dyn P_e,  p = z_pose P_p,
        V(x) = head.vertices(shape, e[:E], [p_global, p_neck, e_jaw, e_eyes]) + p_t

* surface sample points (surface.py): on every triangle f the centroids of the L_f^2 sub-triangles
  of its L_f-fold subdivision (a regular barycentric grid), L_f chosen from the triangle's projected
  area in the photo (denser where the photo has more pixels, texture.py). A sample is (parent
  triangle, barycentric b), so it rides on the mesh: at any latent its position is

    (2) X_s(x) = sum_k b_sk V(x)[faces[parent_s, k]]

  which is how the photo's texture is carried to the canonical (neutral) head and to every other
  expression: the texture lives on (triangle, barycentric), not in space.
* per sample: the photo pixel it was seen at (eq. 2 at the photo's latent, projected by the photo's
  camera), its confidence w in [0, 1] (z-buffer visibility x head-and-hair matte x a ramp on the
  viewing angle, texture.py), the fill colour for what the photo does not show (mirror, then
  diffusion over the mesh, or the template's parts for eyes, mouth and teeth), and the blended colour

    (3) c_s = w_s photo(u_s) + m_s photo(u'_s) + (1 - w_s - m_s) fill_s

  with u'_s, m_s the sample's mirror point in the photo and its share (texture.py eq. 3-4).
* registration (texture only): at the photo's latent the fitted head's face is moved onto the photo's
  own landmarks before the texture is projected, so the photo's lips land on the lips and its teeth
  in the mouth, eyelids on the lids and irises on the eyeballs, even where the motion latent cannot
  reach the photo's expression (a grin wider than AU12 = 1, a mouth opened past AU26 = 1):

    (4) δ_i = (z_i / f) R_cᵀ [ℓ_i − π(V_i), 0]ᵀ   for the face's landmark vertices i (not the oval,
        whose landmarks slide), zero on the scalp, neck, teeth and eyeballs, harmonic in between
        (mouth cavity, eye sockets, the oval ring)

  with ℓ_i the photo's landmark, π(V_i) and z_i the vertex's pixel and depth in the photo's camera,
  f the focal length and R_c the camera's rotation. The offsets are used for eq. 2's projection
  only; the avatar's geometry at every latent (the photo's included) stays eq. 1, so the photo's
  expression lives in its latent, not in the head.

``build_portrait_model`` makes one from the photo, its matte and the motion fit (latent, identity,
camera); ``synth.synthesize`` renders frames from it; ``initial_avatar`` turns it into a
``GaussianAvatar`` coloured from the photo.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.avatar import AvatarConfig, GaussianAvatar
from vasa3d_jax.avatar import binding as bnd
from vasa3d_jax.avatar import gaussians as gs
from vasa3d_jax.camera import project_points
from vasa3d_jax.head import HeadModel, geometry, template_head
from vasa3d_jax.head.base import JOINTS
from vasa3d_jax.head.landmarks import FACE_OVAL
from vasa3d_jax.head.prior import base_priors
from vasa3d_jax.motion_space import MotionSpace
from vasa3d_jax.portrait import hair as hair_lib
from vasa3d_jax.portrait import texture as tex
from vasa3d_jax.portrait.matte import Matte
from vasa3d_jax.portrait.surface import NORMAL_SCALE, PLANE_SCALE, SURFACE_OPACITY, layout_samples
from vasa3d_jax.render import Camera


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class PortraitModel:
    """One portrait carried onto its fitted head (module docstring, eqs. 1-3).

    head:        HeadModel (the template head; pytree)
    shape:       (S,) float32 identity offsets (template: (3V,) metres), hair shell included
    prior_exp:   (D_dyn, E + 9) float32 P_e of eq. 1 (``head.prior.base_priors``)
    prior_pose:  (6, 9) float32 P_p of eq. 1
    image:       (H, W, 3) float32 the photo, RGB in [0, 1]
    latent:      (D,) float32 the photo's motion latent x = [z_dyn, z_pose]
    camera:      Camera of the photo (viewmat (4, 4) world->camera OpenCV, K (3, 3) px, W x H)
    matte:       (H, W) float32 head-and-hair matte of the photo in [0, 1] (matte.Matte.head)
    parent:      (P,) int32 sample -> triangle
    bary:        (P, 3) float32 barycentric coordinates of the sample in its triangle
    level:       (P,) float32 L_f of the sample's triangle (the sample covers k_f / L_f)
    photo_xy:    (P, 2) float32 where the sample is in the photo, pixels (centres at +0.5)
    confidence:  (P,) float32 w of eq. 3: how well the photo saw the sample (0 = not seen)
    mirror_xy:   (P, 2) float32 where the sample's mirror point is in the photo, pixels
    mirror_confidence: (P,) float32 m of texture.py eq. 3, the mirror's share of the colour
    fill:        (P, 3) float32 RGB for what the photo does not show (mirror / diffusion / parts)
    color:       (P, 3) float32 RGB of eq. 3
    region:      (P,) int32 region of the sample's triangle (``head.region_names``)
    thickness:   (V,) float32 hair-shell offset along the rest normal, metres (hair.py)
    mouth_open:  () float32 inner-lip gap / mouth width in the photo (> MOUTH_OPEN_RATIO: open)
    registration: (V, 3) float32 eq. 4's offsets at the photo's latent (texture projection only)
    space:       static MotionSpace of ``latent``
    """

    head: HeadModel
    shape: jax.Array
    prior_exp: jax.Array
    prior_pose: jax.Array
    image: jax.Array
    latent: jax.Array
    camera: Camera
    matte: jax.Array
    parent: jax.Array
    bary: jax.Array
    level: jax.Array
    photo_xy: jax.Array
    confidence: jax.Array
    mirror_xy: jax.Array
    mirror_confidence: jax.Array
    fill: jax.Array
    color: jax.Array
    region: jax.Array
    thickness: jax.Array
    mouth_open: jax.Array
    registration: jax.Array
    space: MotionSpace = dataclasses.field(metadata=dict(static=True))

    @property
    def num_samples(self) -> int:
        return self.parent.shape[0]

    def replace(self, **kw) -> "PortraitModel":
        return dataclasses.replace(self, **kw)


# ---- eq. 1-2: the posed head and its samples ------------------------------------------------------
def posed_vertices(head: HeadModel, shape, prior_exp, prior_pose, space: MotionSpace, x) -> jax.Array:
    """Eq. 1 for one latent ``x (D,)`` -> (V, 3); the same as ``GaussianAvatar.posed_vertices`` of
    an avatar whose base networks are still their priors."""
    z_dyn, z_pose = space.split(x)
    e = z_dyn @ prior_exp
    p = z_pose @ prior_pose
    n = head.num_expression
    pose = jnp.concatenate([p[3:6], p[0:3], e[n:n + 3], e[n + 3:n + 9]])
    return head.vertices(shape, e[:n], pose) + p[6:9]


def model_vertices(pm: PortraitModel, x) -> jax.Array:
    """Eq. 1 of a portrait model: ``x (D,)`` -> (V, 3)."""
    return posed_vertices(pm.head, pm.shape, pm.prior_exp, pm.prior_pose, pm.space, x)


def photo_registration(head: HeadModel, verts, camera: Camera, landmarks) -> np.ndarray:
    """Eq. 4: (V, 3) offsets (metres) that move the posed head ``verts`` onto the photo's landmarks
    ``(468, 2)`` pixels. Zero for a head without a vertex per MediaPipe landmark."""
    verts = np.asarray(verts, np.float64)
    if head.landmark_vertices is None:
        return np.zeros_like(verts, dtype=np.float32)
    lmk = np.asarray(head.landmark_vertices)
    target = np.asarray(landmarks, np.float64)[:len(lmk), :2]
    if target.shape != (len(lmk), 2) or not np.all(np.isfinite(target)):
        raise ValueError(f"landmarks must be ({len(lmk)}, 2) finite pixels; got {np.shape(landmarks)}")
    R, K = np.asarray(camera.viewmat, np.float64)[:3, :3], np.asarray(camera.K, np.float64)
    xy, z = project_points(jnp.asarray(verts[lmk], jnp.float32), jnp.asarray(camera.viewmat), jnp.asarray(camera.K))
    step = (target - np.asarray(xy, np.float64)) * (np.asarray(z, np.float64)[:, None] / np.diag(K)[None, :2])
    faces = np.asarray(head.faces)
    region = np.asarray(head.face_region)
    names = list(head.region_names)
    nv = len(verts)
    fixed = np.zeros(nv, bool)
    zero_regions = [names.index(r) for r in ("scalp", "neck", "teeth") if r in names]
    fixed[np.unique(faces[np.isin(region, zero_regions)])] = True
    w = np.asarray(head.lbs_weights)
    fixed[(w[:, JOINTS.index("eye_l")] > 0.99) | (w[:, JOINTS.index("eye_r")] > 0.99)] = True
    values = np.zeros((nv, 3))
    inner = np.setdiff1d(np.arange(len(lmk)), FACE_OVAL)
    fixed[lmk[inner]] = True
    values[lmk[inner]] = np.c_[step[inner], np.zeros(len(inner))] @ R  # R_cᵀ applied to row vectors
    return geometry.harmonic_extension(faces, nv, fixed, values).astype(np.float32)




# ---- the motion fit -------------------------------------------------------------------------------
def _fit_fields(motion_fit, frame: int = 0):
    """(latent (D,), identity (S,), camera) of one frame of a ``face.MotionFit`` (``encode_motion``)."""
    latents = np.asarray(motion_fit.latents, np.float32)
    if latents.ndim == 1:
        latents = latents[None]
    if not 0 <= frame < len(latents):
        raise ValueError(f"{frame=} but the motion fit has {len(latents)} frames")
    camera = motion_fit.camera() if callable(motion_fit.camera) else motion_fit.camera
    return latents[frame], np.asarray(motion_fit.identity, np.float32), camera


def build_portrait_model(image, analysis, motion_fit, matte: Matte, *, head: HeadModel | None = None,
                         space: MotionSpace | None = None, **kw) -> PortraitModel:
    """The portrait model of a photo (module docstring) from its face analysis (its landmarks register
    the texture, eq. 4), the encoder's ``MotionFit`` (its first frame's latent, the identity, the
    camera) and the head-and-hair matte. ``kw``: ``build_from_fit``."""
    head = head or template_head()
    latent, shape, camera = _fit_fields(motion_fit)
    kw.setdefault("landmarks", np.asarray(analysis.landmarks)[..., :2].reshape(-1, 2)[:468])
    return build_from_fit(image, matte, latent=latent, shape=shape, camera=camera, head=head,
                          space=space, **kw)


def build_from_fit(image, matte: Matte, *, latent, shape, camera: Camera, head: HeadModel | None = None,
                   space: MotionSpace | None = None, landmarks=None, hair_shell: bool = True,
                   sample_spacing_px: float = 1.5, max_level: int = 6,
                   verbose: bool = False) -> PortraitModel:
    """The portrait model from explicit inputs.

    image: (H, W, 3) RGB in [0, 1] (uint8 is converted). matte: ``matte.Matte`` of the photo.
    latent: (D,) the photo's motion latent in ``space`` (default ``MotionSpace.builtin()``).
    shape: (S,) identity of ``head`` (template: (3V,) per-vertex offsets, metres; zeros = mean head).
    camera: the photo's ``Camera`` (width, height = the image's).
    landmarks: (468, 2) the photo's MediaPipe landmarks in pixels: the texture is projected from the
        head registered onto them (eq. 4); None projects from the fitted head as it is.
    hair_shell: push scalp vertices out to the matte's silhouette (hair.py).
    sample_spacing_px: target distance between surface samples in the photo (denser = sharper
        initial avatar, more Gaussians); max_level caps the subdivision of one triangle (L^2 samples).
    """
    t0 = time.perf_counter()
    head = head or template_head()
    space = space or MotionSpace.builtin()
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB; got {image.shape}")
    h, w = image.shape[:2]
    if (camera.width, camera.height) != (w, h):
        raise ValueError(f"camera is {camera.width}x{camera.height} but the image is {w}x{h}; "
                         "pass the camera the motion fit estimated for this image")
    if matte.head.shape != (h, w):
        raise ValueError(f"matte is {matte.head.shape} but the image is {(h, w)}")
    latent = jnp.asarray(latent, jnp.float32).reshape(-1)
    space.check(latent)
    shape = jnp.asarray(shape, jnp.float32).reshape(-1)
    if shape.shape[0] != head.num_shape:
        raise ValueError(f"shape has {shape.shape[0]} values; this {head.kind} head needs {head.num_shape}")
    p_exp, p_pose = base_priors(space, head)
    pose_fn = jax.jit(lambda s, x: posed_vertices(head, s, p_exp, p_pose, space, x))

    thickness = np.zeros(head.num_vertices, np.float32)
    if hair_shell:
        thickness = hair_lib.shell_thickness(head, np.asarray(pose_fn(shape, latent)), camera, matte.head)
        normals = hair_lib.rest_normals(head, shape)
        shape = shape + jnp.asarray((thickness[:, None] * normals).reshape(-1), jnp.float32)
    verts = np.asarray(pose_fn(shape, latent))
    registration = (np.zeros_like(verts) if landmarks is None
                    else photo_registration(head, verts, camera, landmarks))
    verts = verts + registration
    t1 = time.perf_counter()

    levels = tex.subdivision_levels(head, verts, camera, sample_spacing_px, max_level)
    parent, bary, level = layout_samples(levels)
    texture = tex.project_texture(head, verts, camera, image, matte, parent, bary, level)
    t2 = time.perf_counter()
    if verbose:
        print(f"portrait model: shell {t1 - t0:.2f}s, texture {t2 - t1:.2f}s, {len(parent)} samples")
    region = np.asarray(head.face_region)[parent]
    return PortraitModel(
        head=head, shape=shape, prior_exp=p_exp, prior_pose=p_pose,
        image=jnp.asarray(image, jnp.float32), latent=latent, camera=camera,
        matte=jnp.asarray(matte.head, jnp.float32), parent=jnp.asarray(parent),
        bary=jnp.asarray(bary), level=jnp.asarray(level),
        photo_xy=jnp.asarray(texture.photo_xy, jnp.float32),
        confidence=jnp.asarray(texture.confidence, jnp.float32),
        mirror_xy=jnp.asarray(texture.mirror_xy, jnp.float32),
        mirror_confidence=jnp.asarray(texture.mirror_confidence, jnp.float32),
        fill=jnp.asarray(texture.fill, jnp.float32), color=jnp.asarray(texture.color, jnp.float32),
        region=jnp.asarray(region, jnp.int32), thickness=jnp.asarray(thickness, jnp.float32),
        mouth_open=jnp.asarray(texture.mouth_open, jnp.float32),
        registration=jnp.asarray(registration, jnp.float32), space=space)


# ---- the initial Gaussian avatar ------------------------------------------------------------------
def initial_avatar(pm: PortraitModel, space: MotionSpace | None = None, *,
                   config: AvatarConfig = AvatarConfig(), opacity: float = SURFACE_OPACITY,
                   key: jax.Array | None = None):
    """A ``GaussianAvatar`` (as ``avatar.io.Avatar``) initialised from the portrait model: one flat,
    nearly opaque Gaussian per surface sample (GaussianAvatars' binding; local position = the sample,
    in-plane std PLANE_SCALE k_f / L_f, normal std NORMAL_SCALE k_f / L_f), coloured by eq. 3
    (photo where seen, fill elsewhere; the template's parts for eyes, mouth and teeth where the photo
    does not show them), identity = the portrait's shape (hair shell included). The base networks
    start at their priors and the residuals at zero (``GaussianAvatar.init``), so at the photo's
    latent and camera the avatar renders the photo's colours on the fitted head.

    space: the avatar's motion space (default: the portrait's). config: ``AvatarConfig`` (its
    ``per_triangle`` is ignored: the samples set the count; ``sh_degree`` is honoured).
    """
    from vasa3d_jax.avatar.io import Avatar
    space = space or pm.space
    if space != pm.space:
        raise ValueError("the avatar's motion space differs from the portrait's; the portrait's latent "
                         "would mean something else: build the portrait model in that space")
    key = jax.random.key(0) if key is None else key
    model = GaussianAvatar(pm.head, space, config)
    params = model.init(key)
    g, b = _bound_gaussians(model.faces, model.neutral_vertices(pm.shape), pm.parent, pm.bary,
                            pm.level, pm.color, opacity, config.sh_degree)
    g, b = gs.grow(g, b, gs.bucket_capacity(pm.num_samples, config.bucket))
    return Avatar(model, {**params, "gaussians": g, "binding": b, "shape": pm.shape})


def _bound_gaussians(faces, neutral, parent, bary, level, color, opacity, sh_degree):
    frames = bnd.gather_frames(bnd.triangle_frames(neutral, faces), parent)
    means = jnp.einsum("pk,pkc->pc", bary, neutral[faces[parent]])
    log_scales = jnp.log(jnp.asarray([PLANE_SCALE, NORMAL_SCALE, PLANE_SCALE])) - jnp.log(level)[:, None]
    n = parent.shape[0]
    colors = color if sh_degree is None else gs.rgb_to_sh(color, sh_degree)
    g = gs.BoundGaussians(
        means_local=bnd.world_to_local_means(means, frames),
        quats_local=jnp.tile(jnp.array([1.0, 0.0, 0.0, 0.0], jnp.float32), (n, 1)),
        log_scales=log_scales.astype(jnp.float32),
        opacity_logits=jnp.full((n,), gs.logit(opacity), jnp.float32), colors=colors)
    return g, gs.Binding(parent=parent, active=jnp.ones((n,), bool))


def resample(pm: PortraitModel, sample_spacing_px: float, max_level: int = 6) -> PortraitModel:
    """The same portrait with another sample layout (e.g. fewer Gaussians for a faster fit)."""
    verts = np.asarray(model_vertices(pm, pm.latent)) + np.asarray(pm.registration)
    levels = tex.subdivision_levels(pm.head, verts, pm.camera, sample_spacing_px, max_level)
    parent, bary, level = layout_samples(levels)
    matte = Matte(person=np.asarray(pm.matte), head=np.asarray(pm.matte), hair=np.zeros_like(pm.matte),
                  face=np.zeros_like(pm.matte))
    t = tex.project_texture(pm.head, verts, pm.camera, np.asarray(pm.image), matte, parent, bary, level)
    return pm.replace(parent=jnp.asarray(parent), bary=jnp.asarray(bary), level=jnp.asarray(level),
                      photo_xy=jnp.asarray(t.photo_xy), confidence=jnp.asarray(t.confidence),
                      mirror_xy=jnp.asarray(t.mirror_xy),
                      mirror_confidence=jnp.asarray(t.mirror_confidence),
                      fill=jnp.asarray(t.fill), color=jnp.asarray(t.color),
                      region=jnp.asarray(np.asarray(pm.head.face_region)[parent], jnp.int32))
