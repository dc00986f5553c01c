"""The motion encoder: face landmarks -> motion latents x = [z_dyn, z_pose], identity and camera.

Analysis by synthesis (portrait-notes.md §1): the head model is posed by the motion latent exactly
as ``GaussianAvatar`` poses it with untrained base networks (avatar.py eqs. (1)-(3), the linear
priors of ``base_priors``), projected through a pinhole camera, and compared with MediaPipe's 468
landmarks and the two iris centres.

Frames and camera (DESIGN.md conventions: metres; head frame y up, z out of the face, origin at
the head centre; cameras OpenCV):

    (1) V(x; β)  = head.vertices(β, ψ(z_dyn), [θ_global(z_pose), 0, θ_jaw, θ_eye]) + t(z_pose)
    (2) X_cam    = R_c V + c,     R_c = diag(1, −1, −1)  (a frontal camera: the canonical head, rot = 0,
                                                        faces it; head +y is image up)
    (3) u        = f X/Z + W/2,   v = f Y/Z + H/2        (principal point at the image centre,
                                                        pixel centres at +0.5, as MediaPipe and gsplat)

so the per-clip world -> camera matrix is ``viewmat = [[R_c, c], [0, 1]]`` (world = the canonical
head frame) and every per-frame head motion lives in the latent (``z_pose``), which is what the
renderer needs: ``avatar.apply(params, latents[t])`` seen through ``MotionFit.camera()``. Per clip
there is one identity β, one focal length f (square pixels) and one head centre c; the translation
is re-centred after the fit so that the clip's mean t is 0 (c absorbs it; eq. 2 is linear in both).

Unknowns: per frame x (D = 28 for ``MotionSpace.builtin()``: 20 AUs in [0, 1], gaze yaw/pitch,
axis-angle, translation); per clip g = (β, log f, c).

Identity (template head, whose shape is a free per-vertex offset field): a smooth basis, the K
lowest eigenvectors Φ of the face mesh's graph Laplacian (``IDENTITY_MODES`` per axis), extended to
the whole head by ``geometry.harmonic_extension`` (rigid eyeballs and teeth move with the mean of
their nearest skin vertices). β = Φ b. Prior (precision on b):

    (4) E_id = ‖L Φ b‖²/σ_lap² + ‖Φ b‖²/σ_ridge² + ‖Φ b − M(Φ b)‖²/σ_sym²
             + ‖S Φ b‖²/σ_seal² + Σ_k (â_kᵀ Φ b)²/σ_expr²

with L the umbrella Laplacian (``HeadModel.shape_prior``'s operator) and M the left-right mirror
(portrait-notes §1.1, §1.4). The last two terms settle the identity/expression ambiguity of one
image (the classic one of single-image face fitting) in favour of expression: S takes the
difference of each upper/lower inner-lip vertex pair (identity cannot open or close the mouth), and
â_k is the unit displacement field of expression unit k at intensity 1 (the jaw's rotation
included) on the face, so identity has (almost) no component along any expression: a smiling or
speaking photo is explained by its latent, and the neutral latent on its identity is neutral. FLAME: β = its first K shape coefficients, unit-variance prior.

Energy (squared residuals, each divided by its noise scale; s = inter-ocular distance in pixels,
outer canthi 33-263, so weights do not depend on resolution):

    (5) E = Σ_i w_i ‖π(X_i) − ℓ_i‖²/(σ_ℓ s)²  +  w_iris Σ_e ‖π(P_e) − ι_e‖²/(σ_ℓ s)²
          + Σ_k x_k²/σ_k²  +  E_id  +  (log f − log f_0)²/σ_f²  [+ smoothing, eq. 7]

P_e is the front pole of eyeball e (the pupil centre of the model), ι_e the detected iris centre.
The inner-lip contour counts ``INNER_LIP_WEIGHT`` times. Face-oval landmarks (``FACE_OVAL``) slide with pose (portrait-notes §1.5): their weight is
``OVAL_WEIGHT`` · max(0, n·v)^2 with n the landmark's rest normal rotated by the initial pose and v
the direction to the camera, so contour points on the far side barely count.

Solver: Levenberg-Marquardt, Jacobians by ``jax.jacfwd``, the per-clip unknowns eliminated by the
Schur complement (block-sparse normal equations of bundle adjustment):

    (6) S = A_gg − Σ_t A_gt A_tt⁻¹ A_tg,   S δg = −(b_g − Σ_t A_gt A_tt⁻¹ b_t),
        δx_t = −A_tt⁻¹ (b_t + A_tg δg),    A = JᵀJ + λ diag(JᵀJ)

AUs are projected onto their MotionSpace bounds after each step. Initialisation is MediaPipe's own
rigid step (portrait-notes §1.3, geometry_pipeline.cc): a weighted similarity Procrustes between the
template's landmark vertices and the landmarks (x, y, z), z being MediaPipe's relative depth in
pixels, with MediaPipe's Procrustes weights (``PROCRUSTES_WEIGHTS``).

Video: stage 1 solves eq. 6 on up to ``keyframes`` frames spread over the clip (identity, f, c);
stage 2 holds them and solves each frame's 28 unknowns (batched, ``chunk`` frames at a time, every
frame started from its own Procrustes pose). Optional temporal smoothing adds, per LM iteration,

    (7) E_s = smooth · Σ_t ‖(x_t − ½(x_{t−1} + x_{t+1}))/range‖²

with the neighbours held at the current iterate (a Jacobi step of the coupled problem).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from vasa3d_jax.camera import camera_from_estimate, intrinsics, pose_viewmat
from vasa3d_jax.geometry import rotmat_to_quat
from vasa3d_jax.head import geometry
from vasa3d_jax.head import lbs as lbs_lib
from vasa3d_jax.head import landmarks
from vasa3d_jax.head.base import JOINTS, PARENTS, HeadModel
from vasa3d_jax.head.landmarks import EYE_R_CORNERS, FACE_OVAL, OUTER_CANTHI
from vasa3d_jax.head.prior import base_priors
from vasa3d_jax.motion_space import MotionSpace
from vasa3d_jax.render.types import Camera

# ---- MediaPipe landmark indices beyond head/landmarks.py's tables --------------------------------
# Gaze: the iris model's centre point (index 0 of its 5; mediapipe-face.md §4.3), one per eye,
# matched to the eye whose corners (landmarks.EYE_R_CORNERS / EYE_L_CORNERS) it lies between.
IRIS_CENTRE = 0
# Rigid init weights: MediaPipe geometry_pipeline_metadata_landmarks.pbtxt (portrait-notes.md §1.3);
# the two groups the notes give as a range (0.014-0.019, 0.005-0.010) take its midpoint.
PROCRUSTES_WEIGHTS = {
    129: 0.121, 358: 0.121, 4: 0.071, 136: 0.067, 365: 0.067, 33: 0.059, 263: 0.059, 133: 0.053,
    362: 0.053, 205: 0.047, 425: 0.047, 6: 0.032, 198: 0.025, 420: 0.025,
    **{i: 0.0165 for i in (121, 350, 143, 372, 119, 348, 147, 376)},
    **{i: 0.0075 for i in (10, 54, 284, 67, 297, 117, 346, 127, 356, 132, 361)},
}

# ---- fit constants (project choices, tuned on the synthetic round trip) ------------------------
IDENTITY_MODES = 24  # Laplacian eigenvectors per axis (72 identity unknowns)
SIGMA_LANDMARK = 0.01  # σ_ℓ: landmark noise as a fraction of the inter-ocular distance (~0.6 mm)
SIGMA_LAP = 0.0005  # σ_lap (m): deviation of an offset from its neighbours' mean
SIGMA_RIDGE = 0.01  # σ_ridge (m): offset size
SIGMA_SYM = 0.002  # σ_sym (m): left-right asymmetry of the offsets
SIGMA_SEAL = 0.0002  # σ_seal (m): identity's change of an inner-lip pair's separation (eq. 4)
SIGMA_EXPR = 0.0003  # σ_expr (m): identity's component along a unit expression field (eq. 4)
SIGMA_LOG_FOCAL = 0.25  # σ_f: a ~25 % focal-length prior around the default field of view
DEFAULT_FOV_DEG = 35.0  # field of view on the image's longer side (portrait-notes §1.2: 30-40°)
OVAL_WEIGHT = 0.3  # face-oval landmarks count this much at best (§1.5)
IRIS_WEIGHT = 2.0  # the iris centres are the only gaze evidence
# The inner-lip contour (20 of 468 points) carries the mouth opening, which decides where the photo's
# lips and teeth go on the head (portrait/texture.py); without extra weight the rest of the face
# outvoted it (a closed-mouth photo was fitted with AU25 = 0.43, gap 0.037 vs 0.003 in the photo).
INNER_LIP_WEIGHT = 4.0
# Latent priors σ_k by channel unit: AU intensities, gaze (rad), rotation (rad, ~free), translation (m).
SIGMA_LATENT = {"intensity": 1.0, "rad": 1.0, "m": 0.1, "": 1.0}
SIGMA_GAZE = 0.3
R_CAMERA = np.diag([1.0, -1.0, -1.0])  # eq. 2


# ---- the reduced head (landmarks + eye poles + joints) ------------------------------------------
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LandmarkModel:
    """What the fit evaluates: a ``HeadModel`` on the 468 landmark vertices and the two eye poles.

    head:        HeadModel with V' = 470 + 5 vertices (the last 5 carry the joints: its j_regressor
                 picks them, so joints follow identity and expression exactly as in the full head)
    basis:       (V, 3, K) float32, identity basis on the full head (β = basis · b)
    prior_chol:  (K, K) float32, U with UᵀU = the precision of eq. 4 (b units: metres)
    p_exp:       (D_dyn, E + 9) float32, avatar prior z_dyn -> (ψ, θ_jaw, θ_eye)
    p_pose:      (6, 9) float32, avatar prior z_pose -> (θ_neck, θ_global, t)
    normals:     (468, 3) float32, rest normals of the landmark vertices (oval visibility)
    template:    (468, 3) float32, rest landmark positions (Procrustes init)
    vertex_ids:  (470,) int32, the full head's vertices behind the reduced ones (landmarks, eye
                 poles: subject's right eye first)
    """

    head: HeadModel
    basis: jax.Array
    prior_chol: jax.Array
    p_exp: jax.Array
    p_pose: jax.Array
    normals: jax.Array
    template: jax.Array
    vertex_ids: jax.Array

    @property
    def num_identity(self) -> int:
        return self.basis.shape[-1]


class _HeadContent:
    """A head model compared and hashed by a digest of everything it holds (its array leaves, their
    shapes and dtypes, and its static fields), so ``functools.lru_cache`` can key on it: two
    equal heads share one entry, a changed head never hits a stale one."""

    def __init__(self, head: HeadModel):
        self.head = head
        h = hashlib.sha256()
        leaves, treedef = jax.tree_util.tree_flatten(head)
        h.update(repr(treedef).encode())
        for leaf in leaves:
            a = np.ascontiguousarray(np.asarray(leaf))
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
        self.digest = h.digest()

    def __eq__(self, other) -> bool:
        return isinstance(other, _HeadContent) and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)


def landmark_model(head: HeadModel, space: MotionSpace, num_modes: int = IDENTITY_MODES) -> LandmarkModel:
    """The reduced model of ``head`` for ``space`` (seconds to build; the last few are kept, keyed
    by the head's content, ``_landmark_model``)."""
    return _landmark_model(_HeadContent(head), space, num_modes)


@functools.lru_cache(maxsize=4)
def _landmark_model(head: _HeadContent, space: MotionSpace, num_modes: int) -> LandmarkModel:
    return _build_landmark_model(head.head, space, num_modes)


def _build_landmark_model(head: HeadModel, space: MotionSpace, num_modes: int) -> LandmarkModel:
    if head.landmark_vertices is None:
        raise ValueError(f"this {head.kind} head has no MediaPipe landmark correspondence; load one "
                         "with load_flame(..., landmark_embedding=PATH) or use template_head()")
    if space.pose_size != 6:
        raise ValueError(f"the encoder needs a 6-channel z_pose; this MotionSpace has {space.pose_size}")
    v = np.asarray(head.v_template, np.float64)
    faces = np.asarray(head.faces)
    lmk = np.asarray(head.landmark_vertices)
    weights = np.asarray(head.lbs_weights)
    poles = []
    for joint in ("eye_r", "eye_l"):  # iris order: subject's right eye (33/133) first, as MediaPipe
        ids = np.where(weights[:, JOINTS.index(joint)] > 0.99)[0]
        if len(ids) == 0:
            raise ValueError(f"this {head.kind} head has no vertices bound to the {joint} joint; "
                             "gaze cannot be fitted")
        poles.append(ids[np.argmax(v[ids, 2])])
    ids = np.concatenate([lmk, poles])
    if head.shapedirs is None:
        basis, precision = _template_identity_basis(head, num_modes)
    else:
        k = min(num_modes * 3, head.shapedirs.shape[-1])
        basis = np.zeros(np.asarray(head.shapedirs).shape[:2] + (k,))
        basis[...] = np.asarray(head.shapedirs)[..., :k]
        precision = np.eye(k)
    jreg = np.asarray(head.j_regressor, np.float64)
    n = len(ids)
    nj = len(JOINTS)

    def rows(a):  # per-vertex array -> the reduced vertices + the 5 joint rows (J a)
        return np.concatenate([a[ids], np.einsum("jv,v...->j...", jreg, a)])

    posedirs = None
    if head.posedirs is not None:
        pd = np.asarray(head.posedirs)
        posedirs = jnp.asarray(np.concatenate([pd[ids], np.zeros((nj,) + pd.shape[1:])]), jnp.float32)
    j_reg = np.zeros((nj, n + nj))
    j_reg[:, n:] = np.eye(nj)
    # Shape for the reduced head is the identity coefficient vector b: shapedirs = the basis rows.
    reduced = HeadModel(
        v_template=jnp.asarray(rows(v), jnp.float32), faces=jnp.zeros((1, 3), jnp.int32),
        face_region=jnp.zeros((1,), jnp.int32), shapedirs=jnp.asarray(rows(basis), jnp.float32),
        exprdirs=jnp.asarray(rows(np.asarray(head.exprdirs, np.float64)), jnp.float32),
        expression_pose=head.expression_pose, posedirs=posedirs, j_regressor=jnp.asarray(j_reg, jnp.float32),
        lbs_weights=jnp.asarray(np.concatenate([weights[ids], np.zeros((nj, nj))]), jnp.float32),
        landmark_vertices=jnp.arange(len(lmk), dtype=jnp.int32), lmk_faces_idx=None, lmk_bary_coords=None,
        laplacian_edges=None, region_names=head.region_names, kind=head.kind)
    p_exp, p_pose = base_priors(space, head)
    normals = geometry.vertex_normals(v, faces)[lmk]
    return LandmarkModel(
        head=reduced, basis=jnp.asarray(basis, jnp.float32),
        prior_chol=jnp.asarray(np.linalg.cholesky(precision).T, jnp.float32),
        p_exp=p_exp, p_pose=p_pose, normals=jnp.asarray(normals, jnp.float32),
        template=jnp.asarray(v[lmk], jnp.float32), vertex_ids=jnp.asarray(ids, jnp.int32))


def _template_identity_basis(head: HeadModel, num_modes: int) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 4: (V, 3, 3K) smooth offset basis and its (3K, 3K) prior precision (b in metres)."""
    v = np.asarray(head.v_template, np.float64)
    faces = np.asarray(head.faces)
    lmk = np.asarray(head.landmark_vertices)
    nv, nf = len(v), len(lmk)
    local = -np.ones(nv, np.int64)
    local[lmk] = np.arange(nf)
    face_tris = local[faces[np.all(local[faces] >= 0, axis=1)]]
    e = geometry.edges(face_tris)
    adj = np.zeros((nf, nf))
    adj[e[:, 0], e[:, 1]] = adj[e[:, 1], e[:, 0]] = 1.0
    deg = adj.sum(1)
    _, vecs = np.linalg.eigh(np.diag(deg) - adj)
    phi = vecs[:, :num_modes]  # (468, K), orthonormal: ‖Φ b‖ = ‖b‖
    # Extend each mode over the skin (the component holding the face) harmonically; rigid parts
    # (eyeballs, teeth) translate with the mean of their 12 nearest skin vertices.
    all_e = geometry.edges(faces)
    graph = scipy.sparse.coo_matrix((np.ones(len(all_e)), (all_e[:, 0], all_e[:, 1])), shape=(nv, nv))
    _, comp = scipy.sparse.csgraph.connected_components(graph, directed=False)
    skin = comp == comp[lmk[0]]
    fixed = ~skin
    fixed[lmk] = True
    vals = np.zeros((nv, num_modes))
    vals[lmk] = phi
    skin_faces = faces[np.all(skin[faces], axis=1)]
    ext = geometry.harmonic_extension(skin_faces, nv, fixed, vals)
    skin_ids = np.where(skin)[0]
    for c in np.unique(comp[~skin]):
        members = np.where(comp == c)[0]
        d = np.linalg.norm(v[skin_ids] - v[members].mean(0), axis=1)
        ext[members] = ext[skin_ids[np.argsort(d)[:12]]].mean(0)
    k3 = 3 * num_modes
    basis = np.zeros((nv, 3, k3))
    for axis in range(3):
        basis[:, axis, axis::3] = ext
    # Prior (eq. 4) on the face: umbrella Laplacian, ridge, mirror symmetry (partners at (−x, y, z)).
    lap = np.eye(nf) - adj / np.maximum(deg, 1)[:, None]
    face_v = v[lmk]
    mirrored = face_v * np.array([-1.0, 1.0, 1.0])
    partner = np.argmin(((face_v[None] - mirrored[:, None]) ** 2).sum(-1), axis=1)
    perm = np.eye(nf)[partner]
    precision = np.zeros((k3, k3))
    for axis, sign in enumerate((-1.0, 1.0, 1.0)):  # mirror flips x
        sym = np.eye(nf) - sign * perm
        p = (phi.T @ lap.T @ lap @ phi / SIGMA_LAP**2 + np.eye(num_modes) / SIGMA_RIDGE**2
             + phi.T @ sym.T @ sym @ phi / SIGMA_SYM**2)
        precision[axis::3, axis::3] = p
    # Eq. 4, identity vs expression: the inner-lip pairs keep their separation, and identity stays
    # orthogonal to every unit expression field a_k (row r_k: r_k[c::3] = Φᵀ â_k[:, c]).
    seal = phi[list(landmarks.LIP_INNER_UPPER)] - phi[list(landmarks.LIP_INNER_LOWER)]  # paired in order
    for axis in range(3):
        precision[axis::3, axis::3] += seal.T @ seal / SIGMA_SEAL**2
    for field in _expression_fields(head)[lmk].transpose(2, 0, 1):
        unit = field / max(np.linalg.norm(field), 1e-12)
        r = np.zeros(k3)
        for axis in range(3):
            r[axis::3] = phi.T @ unit[:, axis]
        precision += np.outer(r, r) / SIGMA_EXPR**2
    return basis, precision


def _expression_fields(head: HeadModel) -> np.ndarray:
    """(V, 3, E): each expression unit's displacement at intensity 1, its joint rotations included."""
    zero_shape, zero_pose = jnp.zeros(head.num_shape), jnp.zeros(head.num_pose)
    rest = head.vertices(zero_shape, jnp.zeros(head.num_expression), zero_pose)
    unit = jax.vmap(lambda e: head.vertices(zero_shape, e, zero_pose) - rest)(jnp.eye(head.num_expression))
    return np.asarray(unit, np.float64).transpose(1, 2, 0)


def head_with_identity(head: HeadModel, identity) -> HeadModel:
    """A ``HeadModel`` whose rest shape includes ``identity`` (the ``shape`` vector of ``head``).

    ``head_with_identity(head, β).vertices(0, ψ, θ) == head.vertices(β, ψ, θ)``: joints are regressed
    from the shaped vertices either way. Usable by ``GaussianAvatar`` (its own shape starts at 0).
    """
    identity = jnp.asarray(identity, jnp.float32)
    if identity.shape != (head.num_shape,):
        raise ValueError(f"identity has shape {identity.shape}; this {head.kind} head expects ({head.num_shape},)")
    if head.shapedirs is None:
        offsets = identity.reshape(head.num_vertices, 3)
    else:
        offsets = jnp.einsum("s,vcs->vc", identity, head.shapedirs)
    return dataclasses.replace(head, v_template=head.v_template + offsets)


# ---- the result ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MotionFit:
    """What ``encode_motion`` found (numpy arrays).

    latents:       (T, D) float32, motion latents x = [z_dyn, z_pose] (MotionSpace channel order);
                   z_pose is relative to the canonical frontal head, its translation re-centred so
                   the clip mean is 0 (eq. 2)
    identity:      (S,) float32, the head's shape vector β (template: per-vertex offsets, metres)
    identity_coefficients: (K,) float32, b (β = basis · b)
    K:             (3, 3) float32, intrinsics in pixels (principal point at the image centre)
    viewmat:       (4, 4) float32, world (canonical head frame) -> camera, OpenCV axes; per clip
    image_size:    (H, W)
    residuals_px:  (T, 468) float32, reprojection error of each landmark, pixels
    iris_residuals_px: (T, 2) float32, of the iris centres (subject's right eye first)
    iod_px:        (T,) float32, detected inter-ocular distance (outer canthi), pixels
    valid:         (T,) bool, frames that had landmarks; the others' latents are interpolated linearly
                   between fitted frames (held at the ends) and their residuals are 0
    """

    latents: np.ndarray
    identity: np.ndarray
    identity_coefficients: np.ndarray
    K: np.ndarray
    viewmat: np.ndarray
    image_size: tuple[int, int]
    residuals_px: np.ndarray
    iris_residuals_px: np.ndarray
    iod_px: np.ndarray
    valid: np.ndarray

    @property
    def focal(self) -> float:
        return float(self.K[0, 0])

    def camera(self) -> Camera:
        """The renderer's camera of the photo/video (the same for every frame: head motion is in x),
        through ``camera.camera_from_estimate``."""
        h, w = self.image_size
        return camera_from_estimate(self.K, self.viewmat[:3, :3], self.viewmat[:3, 3], int(w), int(h))

    def head(self, head: HeadModel) -> HeadModel:
        """``head`` with this fit's identity folded into its rest shape (``head_with_identity``)."""
        return head_with_identity(head, self.identity)

    def relative_error(self) -> np.ndarray:
        """(T,) mean landmark reprojection error / inter-ocular distance."""
        return self.residuals_px.mean(-1) / np.maximum(self.iod_px, 1e-6)


# ---- data preparation ---------------------------------------------------------------------------
def default_focal(image_size: tuple[int, int], fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Focal length (px) of a camera with ``fov_deg`` across the image's longer side."""
    return 0.5 * max(image_size) / np.tan(np.deg2rad(fov_deg) / 2)


def _as_frames(analysis, image_size):
    lmk = np.asarray(analysis.landmarks, np.float32)
    single = lmk.ndim == 2
    if single:
        lmk = lmk[None]
    if lmk.ndim != 3 or lmk.shape[1:] != (468, 3):
        raise ValueError(f"landmarks have shape {np.shape(analysis.landmarks)}; expected (468, 3) or "
                         "(T, 468, 3): x, y in pixels and MediaPipe's relative z")
    iris = getattr(analysis, "iris", None)
    iris = None if iris is None else np.asarray(iris, np.float32).reshape(lmk.shape[0], 2, -1, 2)
    valid = getattr(analysis, "valid", None)
    valid = np.ones(lmk.shape[0], bool) if valid is None else np.asarray(valid, bool).reshape(-1)
    valid &= np.all(np.isfinite(lmk), axis=(1, 2))
    if image_size is None:
        image_size = getattr(analysis, "image_size", None)
    if image_size is None:
        raise ValueError("encode_motion needs the image size: pass image_size=image.shape[:2] "
                         "(landmarks are in pixels of that image)")
    h, w = (int(s) for s in tuple(image_size)[:2])
    lmk = lmk * np.array([1.0, 1.0, w], np.float32)  # MediaPipe's z is in image widths -> pixels
    return lmk, iris, valid, (h, w), single


def _iris_centres(lmk: np.ndarray, iris: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(T, 2, 2) iris centres ordered (subject's right eye, left eye) and (T, 2) their weights."""
    t = lmk.shape[0]
    if iris is None:
        return np.zeros((t, 2, 2), np.float32), np.zeros((t, 2), np.float32)
    c = iris[:, :, IRIS_CENTRE]  # (T, 2, 2)
    eye_r = lmk[:, list(EYE_R_CORNERS), :2].mean(1)
    d0 = np.linalg.norm(c[:, 0] - eye_r, axis=-1)
    d1 = np.linalg.norm(c[:, 1] - eye_r, axis=-1)
    swap = d1 < d0
    ordered = np.where(swap[:, None, None], c[:, ::-1], c)
    ok = np.all(np.isfinite(ordered), axis=(1, 2))
    ordered = np.where(ok[:, None, None], ordered, 0.0)
    return ordered.astype(np.float32), np.repeat(ok[:, None], 2, 1).astype(np.float32)


# ---- init: MediaPipe's weighted Procrustes ------------------------------------------------------
def _procrustes_weights() -> np.ndarray:
    w = np.zeros(468, np.float32)
    for i, wi in PROCRUSTES_WEIGHTS.items():
        w[i] = wi
    return w


def _rotmat_to_axis_angle(r: jax.Array) -> jax.Array:
    q = rotmat_to_quat(r)  # w >= 0
    v = q[..., 1:]
    s = jnp.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2.0 * jnp.arctan2(s, q[..., :1])
    return jnp.where(s > 1e-8, v / jnp.maximum(s, 1e-12) * angle, 2.0 * v)


def rigid_init(model: LandmarkModel, lmk: jax.Array, focal: jax.Array, principal: jax.Array):
    """Weighted similarity Procrustes (Akca 2003, as MediaPipe): (T, 468, 3) -> rotation (T, 3)
    axis-angle in the head frame and the head origin in camera coordinates (T, 3)."""
    w = jnp.asarray(_procrustes_weights())[:, None]
    src = model.template  # head frame
    dst = lmk  # (T, 468, 3): x right, y down, z away from the camera (MediaPipe: smaller = closer)
    ws = w.sum()
    src_c = src - (w * src).sum(0) / ws
    dst_mean = (w * dst).sum(-2, keepdims=True) / ws
    dst_c = dst - dst_mean
    cov = jnp.einsum("ni,tnj->tij", w * src_c, dst_c)  # Σ w s dᵀ
    u, sv, vt = jnp.linalg.svd(cov)
    d = jnp.sign(jnp.linalg.det(jnp.swapaxes(vt, -1, -2) @ jnp.swapaxes(u, -1, -2)))
    fix = jnp.stack([jnp.ones_like(d), jnp.ones_like(d), d], -1)
    rot = jnp.swapaxes(vt, -1, -2) @ (fix[..., :, None] * jnp.swapaxes(u, -1, -2))  # dst ≈ s R src
    scale = jnp.sum(sv * fix, -1) / jnp.sum(w * src_c**2)  # pixels per metre
    r_head = jnp.asarray(R_CAMERA, jnp.float32) @ rot  # R_c R_head = rot
    # Head origin: the image of src = 0 is dst_mean − s R src_mean.
    src_mean = (w * src).sum(0) / ws
    origin_px = dst_mean[:, 0] - scale[:, None] * jnp.einsum("tij,j->ti", rot, src_mean)
    depth = focal / scale
    xy = (origin_px[:, :2] - principal) * depth[:, None] / focal
    return _rotmat_to_axis_angle(r_head), jnp.concatenate([xy, depth[:, None]], -1), rot


# ---- residuals ----------------------------------------------------------------------------------
@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _Static:
    """Sizes (static: they shape the program) and the camera prior (arrays: any image size runs
    the same compiled program)."""

    principal: jax.Array  # (2,) principal point, pixels
    log_focal0: jax.Array  # () log of the prior's focal length
    sigma_log_focal: jax.Array  # () its standard deviation
    dyn: int = dataclasses.field(metadata=dict(static=True))  # D_dyn
    size: int = dataclasses.field(metadata=dict(static=True))  # D
    num_identity: int = dataclasses.field(metadata=dict(static=True))  # K


def _pose_params(model: LandmarkModel, x):
    """avatar.py eqs. (1)-(2) with the linear priors: x -> expression (E,), pose (5, 3), t (3,)."""
    head = model.head
    d = model.p_exp.shape[0]
    e = x[:d] @ model.p_exp
    p = x[d:] @ model.p_pose
    n = head.num_expression
    expr = e[:n]
    pose = jnp.concatenate([p[3:6], p[0:3], e[n:n + 3], e[n + 3:n + 9]])
    if head.expression_pose is not None:
        pose = pose + expr @ head.expression_pose
    return expr, pose.reshape(len(JOINTS), 3), p[6:9]


def _skinning(model: LandmarkModel, x, b):
    """The few numbers LBS needs beyond the shaped points: transforms (5, 3, 4), pose-corrective
    features (36,) or (0,), translation (3,), expression (E,)."""
    head = model.head
    expr, pose, trans = _pose_params(model, x)
    joints = (head.v_template[470:] + jnp.einsum("k,jck->jc", b, head.shapedirs[470:])
              + jnp.einsum("e,jce->jc", expr, head.exprdirs[470:]))
    rot = lbs_lib.rodrigues(pose)
    transforms = lbs_lib.rigid_transforms(rot, joints, PARENTS)[:, :3, :]
    feature = (rot[1:] - jnp.eye(3)).reshape(-1) if head.posedirs is not None else jnp.zeros((0,))
    return transforms, feature, trans, expr


def _frame_points(model: LandmarkModel, x, b):
    """Eq. 1 on the reduced head: (D,), (K,) -> (470, 3) head-frame points (landmarks, eye poles).

    The same maths as ``HeadModel.vertices`` (lbs.py eqs. 1-7) + t, written on the 470 points so
    that its Jacobian (``_points_and_jacobian``) is cheap.
    """
    head = model.head
    transforms, feature, trans, expr = _skinning(model, x, b)
    v = (head.v_template[:470] + jnp.einsum("k,vck->vc", b, head.shapedirs[:470])
         + jnp.einsum("e,vce->vc", expr, head.exprdirs[:470]))
    if head.posedirs is not None:
        v = v + jnp.einsum("p,vcp->vc", feature, head.posedirs[:470])
    a = (head.lbs_weights[:470] @ transforms.reshape(len(JOINTS), 12)).reshape(470, 3, 4)
    # Broadcast-and-sum instead of a batched 3x3 product: XLA:CPU runs tiny batched dots slowly.
    return jnp.sum(a[..., :3] * v[:, None, :], -1) + a[..., 3] + trans


def _points_and_jacobian(model: LandmarkModel, x, b, with_identity: bool):
    """(470, 3) points and their Jacobians (470, 3, D) and (470, 3, K) (or None).

    p_i = Σ_j W_ij G_j [v_i; 1] + t with v_i linear in (x, b) and G_j a function of 5 joints and 5
    rotations: forward mode runs only through that small function; the rest is explicit.
    """
    head = model.head
    if with_identity:
        fn = lambda xx, bb: _skinning(model, xx, bb)  # noqa: E731
        jac = jax.jacfwd(fn, argnums=(0, 1))(x, b)  # per output: (d/dx, d/db)
        (tr, feat, trans, expr) = fn(x, b)
        dx, db = tuple(j[0] for j in jac), tuple(j[1] for j in jac)
    else:
        fn = lambda xx: _skinning(model, xx, b)  # noqa: E731
        (tr, feat, trans, expr), dx = fn(x), jax.jacfwd(fn)(x)
        db = None
    dtr_x, dfeat_x, dtrans_x, dexpr_x = dx
    w = head.lbs_weights[:470]
    v = (head.v_template[:470] + jnp.einsum("k,vck->vc", b, head.shapedirs[:470])
         + jnp.einsum("e,vce->vc", expr, head.exprdirs[:470]))
    dv_x = jnp.einsum("vce,ek->vck", head.exprdirs[:470], dexpr_x)
    if head.posedirs is not None:
        v = v + jnp.einsum("p,vcp->vc", feat, head.posedirs[:470])
        dv_x = dv_x + jnp.einsum("vcp,pk->vck", head.posedirs[:470], dfeat_x)
    nj = len(JOINTS)
    a = (w @ tr.reshape(nj, 12)).reshape(470, 3, 4)
    vh = jnp.concatenate([v, jnp.ones((470, 1))], -1)
    # Broadcast-and-sum and plain matrix products only: XLA:CPU runs tiny batched dots slowly.
    pts = jnp.sum(a[..., :3] * v[:, None, :], -1) + a[..., 3] + trans

    def jac(dtr, dv, dtrans):
        k = dtr.shape[-1]
        # Σ_j W_vj Σ_b dG_jabk vh_vb: one GEMM over b, then the weights.
        h = (vh @ jnp.moveaxis(dtr, 2, 3).reshape(nj * 3 * k, 4).T).reshape(470, nj, 3, k)
        skin = jnp.sum(w[:, :, None, None] * h, 1)
        return skin + jnp.sum(a[..., :3, None] * dv[:, None, :, :], 2) + dtrans

    jx = jac(dtr_x, dv_x, dtrans_x)
    jb = None
    if with_identity:
        dtr_b, _, dtrans_b, _ = db
        jb = jac(dtr_b, head.shapedirs[:470], dtrans_b)
    return pts, jx, jb


def _residuals(x, g, data, model, st: _Static, sigma_x, smooth_w):
    """Eq. 5 for one frame, as a flat vector of whitened residuals (R = 2·470 + 2·D)."""
    b, log_f, centre = g[:st.num_identity], g[st.num_identity], g[st.num_identity + 1:]
    pts = _frame_points(model, x, b) * jnp.asarray([1.0, -1.0, -1.0]) + centre
    z = jnp.maximum(pts[:, 2:3], 1e-3)
    uv = jnp.exp(log_f) * pts[:, :2] / z + jnp.asarray(st.principal)
    target = jnp.concatenate([data["lmk"], data["iris"]])
    return jnp.concatenate([((uv - target) * _row_weights(data)[:, None]).reshape(-1),
                            _prior_residuals(x, data, sigma_x, smooth_w)])


def _row_weights(data):
    """(470,) whitening of eq. 5: landmark weight (or iris weight) / (σ_ℓ s), times the frame mask."""
    scale = data["mask"] / (SIGMA_LANDMARK * data["iod"])
    return jnp.concatenate([data["w_lmk"], jnp.sqrt(IRIS_WEIGHT) * data["w_iris"]]) * scale


def _prior_residuals(x, data, sigma_x, smooth_w):
    return jnp.concatenate([x / sigma_x * data["mask"],
                            jnp.sqrt(smooth_w) * (x - data["target"]) / data["range"] * data["mask"]])


def _residuals_and_jacobian(x, g, data, model, st: _Static, sigma_x, smooth_w, with_global: bool):
    """``_residuals`` and its Jacobians: (R,), (R, D) and, ``with_global``, (R, K + 4)."""
    k = st.num_identity
    b, log_f, centre = g[:k], g[k], g[k + 1:]
    p, jx, jb = _points_and_jacobian(model, x, b, with_global)
    flip = jnp.asarray([1.0, -1.0, -1.0])
    cam = p * flip + centre
    z = jnp.maximum(cam[:, 2:3], 1e-3)
    f = jnp.exp(log_f)
    xy = cam[:, :2] / z
    uv = f * xy + jnp.asarray(st.principal)
    target = jnp.concatenate([data["lmk"], data["iris"]])
    wr = _row_weights(data)[:, None]
    # d uv / d cam = f/Z [[1, 0, -X/Z], [0, 1, -Y/Z]]
    duv_dcam = (f / z)[:, :, None] * jnp.concatenate(
        [jnp.broadcast_to(jnp.eye(2), (470, 2, 2)), -xy[:, :, None]], -1)  # (470, 2, 3)
    duv_dp = duv_dcam * flip  # (470, 2, 3)
    r_pts = ((uv - target) * wr).reshape(-1)
    jx_pts = (jnp.einsum("nuc,nck->nuk", duv_dp, jx) * wr[:, :, None]).reshape(940, -1)
    d = x.shape[0]
    prior_scale = jnp.concatenate([data["mask"] / sigma_x,
                                   jnp.sqrt(smooth_w) / data["range"] * data["mask"]])
    jx_prior = jnp.concatenate([jnp.eye(d), jnp.eye(d)]) * prior_scale[:, None]
    r = jnp.concatenate([r_pts, _prior_residuals(x, data, sigma_x, smooth_w)])
    jac_x = jnp.concatenate([jx_pts, jx_prior])
    if not with_global:
        return r, jac_x, None
    jb_pts = jnp.einsum("nuc,nck->nuk", duv_dp, jb)
    jf = (f * xy)[:, :, None]  # d uv / d log f
    jg_pts = jnp.concatenate([jb_pts, jf, duv_dcam], -1) * wr[:, :, None]
    jac_g = jnp.concatenate([jg_pts.reshape(940, -1), jnp.zeros((2 * d, k + 4))])
    return r, jac_x, jac_g


def _global_residuals(g, model, st: _Static):
    b, log_f = g[:st.num_identity], g[st.num_identity]
    return jnp.concatenate([model.prior_chol @ b, ((log_f - st.log_focal0) / st.sigma_log_focal)[None]])


def _project(x, low, high, bounded):
    return jnp.where(bounded, jnp.clip(x, low, high), x)


def _smooth_target(x, mask):
    """Eq. 7's neighbour mean at the current iterate (one neighbour at the ends / next to a gap)."""
    prev = jnp.concatenate([x[:1], x[:-1]])
    nxt = jnp.concatenate([x[1:], x[-1:]])
    mp = jnp.concatenate([mask[:1] * 0, mask[:-1]])[:, None]
    mn = jnp.concatenate([mask[1:], mask[-1:] * 0])[:, None]
    cnt = mp + mn
    return jnp.where(cnt > 0, (mp * prev + mn * nxt) / jnp.maximum(cnt, 1), x)


def _lm_joint(x, g, data, model, st, sigma_x, low, high, bounded, iters, smooth_w):
    """Eq. 6: LM over all frames' x and the per-clip g (one damping for the whole problem)."""
    d = st.size

    def res(xi, g, di):
        return _residuals(xi, g, di, model, st, sigma_x, smooth_w)

    def cost_of(x, g):
        r = jax.vmap(res, (0, None, 0))(x, g, data)
        return 0.5 * jnp.sum(r**2) + 0.5 * jnp.sum(_global_residuals(g, model, st) ** 2)

    def frame_jac(xi, g, di):
        r, jx, jg = _residuals_and_jacobian(xi, g, di, model, st, sigma_x, smooth_w, True)
        return r, jnp.concatenate([jx, jg], -1)

    def step(carry, _):
        x, g, lam, cost = carry
        if smooth_w > 0:
            data_i = {**data, "target": _smooth_target(x, data["mask"])}
        else:
            data_i = data
        r, jac = jax.vmap(frame_jac, (0, None, 0))(x, g, data_i)
        jt, jg = jac[..., :d], jac[..., d:]
        rg = _global_residuals(g, model, st)
        jpg = jax.jacfwd(lambda gg: _global_residuals(gg, model, st))(g)
        att = jnp.einsum("tri,trj->tij", jt, jt)
        atg = jnp.einsum("tri,trj->tij", jt, jg)
        agg = jnp.einsum("tri,trj->ij", jg, jg) + jpg.T @ jpg
        bt = jnp.einsum("tri,tr->ti", jt, r)
        bg = jnp.einsum("tri,tr->i", jg, r) + jpg.T @ rg
        eye_t, eye_g = jnp.eye(d), jnp.eye(g.shape[0])
        att_d = att + lam * (att * eye_t + 1e-6 * eye_t)
        agg_d = agg + lam * (agg * eye_g + 1e-6 * eye_g)
        inv_atg = jnp.linalg.solve(att_d, atg)
        inv_bt = jnp.linalg.solve(att_d, bt[..., None])[..., 0]
        s = agg_d - jnp.einsum("tij,tik->jk", atg, inv_atg)
        rhs = bg - jnp.einsum("tij,ti->j", atg, inv_bt)
        dg = -jnp.linalg.solve(s, rhs)
        dx = -(inv_bt + jnp.einsum("tij,j->ti", inv_atg, dg))
        x_new = _project(x + dx, low, high, bounded)
        g_new = g + dg
        cost_new = cost_of(x_new, g_new) if smooth_w == 0 else cost_of_smooth(x_new, g_new, data_i)
        ok = jnp.isfinite(cost_new) & (cost_new < cost)
        x = jnp.where(ok, x_new, x)
        g = jnp.where(ok, g_new, g)
        cost = jnp.where(ok, cost_new, cost)
        lam = jnp.where(ok, lam * 0.3, lam * 10.0)
        return (x, g, lam, cost), cost

    def cost_of_smooth(x, g, data_i):
        r = jax.vmap(res, (0, None, 0))(x, g, data_i)
        return 0.5 * jnp.sum(r**2) + 0.5 * jnp.sum(_global_residuals(g, model, st) ** 2)

    cost0 = cost_of(x, g)
    (x, g, _, cost), _ = jax.lax.scan(step, (x, g, jnp.float32(1e-3), cost0), None, length=iters)
    return x, g


def _lm_frames(x, g, data, model, st, sigma_x, low, high, bounded, iters, smooth_w):
    """Stage 2: g fixed; every frame its own LM (its own damping and acceptance), batched."""

    def res(xi, di):
        return _residuals(xi, g, di, model, st, sigma_x, smooth_w)

    def step(carry, _):
        x, lam, cost = carry
        data_i = {**data, "target": _smooth_target(x, data["mask"])} if smooth_w > 0 else data
        r, jac, _ = jax.vmap(lambda xi, di: _residuals_and_jacobian(
            xi, g, di, model, st, sigma_x, smooth_w, False))(x, data_i)
        cost_cur = 0.5 * jnp.sum(r**2, -1)
        a = jnp.einsum("tri,trj->tij", jac, jac)
        bvec = jnp.einsum("tri,tr->ti", jac, r)
        eye = jnp.eye(x.shape[-1])
        a = a + lam[:, None, None] * (a * eye + 1e-6 * eye)
        x_new = _project(x - jnp.linalg.solve(a, bvec[..., None])[..., 0], low, high, bounded)
        cost_new = 0.5 * jnp.sum(jax.vmap(res)(x_new, data_i) ** 2, -1)
        ok = jnp.isfinite(cost_new) & (cost_new < cost_cur)
        x = jnp.where(ok[:, None], x_new, x)
        lam = jnp.where(ok, lam * 0.3, lam * 10.0)
        return (x, lam, cost_new), None

    t = x.shape[0]
    (x, _, _), _ = jax.lax.scan(step, (x, jnp.full((t,), 1e-3), jnp.zeros((t,))), None, length=iters)
    return x


def _reproject(x, g, data, model, st):
    b, log_f, centre = g[:st.num_identity], g[st.num_identity], g[st.num_identity + 1:]
    pts = jax.vmap(lambda xi: _frame_points(model, xi, b))(x) * jnp.asarray([1.0, -1.0, -1.0]) + centre
    uv = jnp.exp(log_f) * pts[..., :2] / jnp.maximum(pts[..., 2:3], 1e-3) + jnp.asarray(st.principal)
    return (jnp.linalg.norm(uv[:, :468] - data["lmk"], axis=-1),
            jnp.linalg.norm(uv[:, 468:] - data["iris"], axis=-1))


_reproject_jit = jax.jit(_reproject)


# ---- jitted stages ------------------------------------------------------------------------------
def _init_frames(model, lmk, log_f, centre, st):
    """Per-frame start: Procrustes rotation, translation relative to ``centre`` (head frame)."""
    rot, origin, rot_cam = rigid_init(model, lmk, jnp.exp(log_f), jnp.asarray(st.principal))
    trans = (origin - centre) @ jnp.asarray(R_CAMERA, jnp.float32)  # R_c⁻¹ = R_c
    x = jnp.zeros((lmk.shape[0], st.size), jnp.float32)
    return x.at[:, st.dyn:st.dyn + 3].set(rot).at[:, st.dyn + 3:].set(trans), origin, rot_cam


def _oval_weights(model, rot_cam, mask):
    """Per-frame landmark weights (T, 468): 1, INNER_LIP_WEIGHT on the inner-lip contour, and
    OVAL_WEIGHT · max(0, n·v)² on the face oval (weights on squared residuals)."""
    n_cam = jnp.einsum("tij,nj->tni", rot_cam, model.normals)  # normals in the camera-like frame
    facing = jnp.clip(-n_cam[..., 2], 0.0, 1.0)  # z points away from the camera
    w = jnp.ones((468,)).at[jnp.asarray(landmarks.LIP_INNER_RING)].set(jnp.sqrt(INNER_LIP_WEIGHT))
    w = w.at[jnp.asarray(FACE_OVAL)].set(0.0)
    oval = jnp.zeros((468,)).at[jnp.asarray(FACE_OVAL)].set(1.0)
    return (w + oval * jnp.sqrt(OVAL_WEIGHT) * facing**2) * mask[:, None]


@functools.partial(jax.jit, static_argnames=("iters", "smooth_w"))
def _fit_joint(model, lmk, data, st, sigma_x, low, high, bounded, iters, smooth_w):
    mask = data["mask"]
    log_f = jnp.asarray(st.log_focal0, jnp.float32)
    _, origin, _ = rigid_init(model, lmk, jnp.exp(log_f), jnp.asarray(st.principal))
    centre = jnp.sum(origin * mask[:, None], 0) / jnp.maximum(mask.sum(), 1)
    x, _, rot_cam = _init_frames(model, lmk, log_f, centre, st)
    data = {**data, "w_lmk": _oval_weights(model, rot_cam, mask)}
    g = jnp.concatenate([jnp.zeros((st.num_identity,)), log_f[None], centre])
    x, g = _lm_joint(x, g, data, model, st, sigma_x, low, high, bounded, iters, smooth_w)
    return x, g


@functools.partial(jax.jit, static_argnames=("iters", "smooth_w"))
def _fit_frames(model, lmk, data, g, st, sigma_x, low, high, bounded, iters, smooth_w):
    log_f, centre = g[st.num_identity], g[st.num_identity + 1:]
    x, _, rot_cam = _init_frames(model, lmk, log_f, centre, st)
    data = {**data, "w_lmk": _oval_weights(model, rot_cam, data["mask"])}
    x = _lm_frames(x, g, data, model, st, sigma_x, low, high, bounded, iters, smooth_w)
    lmk_err, iris_err = _reproject(x, g, data, model, st)
    return x, lmk_err, iris_err


# ---- public entry point ---------------------------------------------------------------------------
def encode_motion(analysis, head: HeadModel, space: MotionSpace | None = None, *,
                  image_size: tuple[int, int] | None = None, focal: float | None = None,
                  smooth: float = 0.0, keyframes: int = 8, chunk: int = 64,
                  joint_iters: int = 12, frame_iters: int = 4, progress=None) -> MotionFit:
    """Fit ``head`` to face landmarks: one image or a clip -> ``MotionFit`` (module docstring).

    analysis:   a ``FaceAnalysis`` (or anything with ``landmarks`` (468, 3) / (T, 468, 3): x right,
                y down in pixels, z MediaPipe's relative depth in image widths; ``iris`` (…, 2, 5, 2)
                pixels or None; optional ``valid`` (T,) bool)
    image_size: (H, W) of the image the landmarks are in (required unless ``analysis`` has
                ``image_size``)
    head:       the head model (``template_head()`` or FLAME with a MediaPipe landmark embedding)
    space:      the motion space (default ``MotionSpace.builtin()``)
    focal:      focal length in pixels; None: fitted, with a prior centred on a 35° field of view
                across the longer image side (``default_focal``)
    smooth:     temporal smoothing weight of eq. 7 (0: none; ~1: mild; video only)
    keyframes:  frames used to fit identity and camera (stage 1); a single image is one keyframe
    joint_iters, frame_iters: LM iterations of stage 1 and stage 2 (4 from the Procrustes start:
                16 keyframes and 6 iterations gave AU MAE 0.091 instead of 0.101 at 1.6x the time)
    chunk:      frames fitted together in stage 2 (fixed shape, compiled once)
    progress:   optional callable(n_done_frames) called after each chunk
    """
    space = MotionSpace.builtin() if space is None else space
    lmk, iris, valid, (h, w), _ = _as_frames(analysis, image_size)
    t = lmk.shape[0]
    if not valid.any():
        raise ValueError("no frame has face landmarks: nothing to encode")
    model = landmark_model(head, space)
    iris_c, iris_w = _iris_centres(lmk, iris)
    iod = np.linalg.norm(lmk[:, OUTER_CANTHI[0], :2] - lmk[:, OUTER_CANTHI[1], :2], axis=-1)
    iod = np.where(valid & (iod > 1e-3), iod, 1.0).astype(np.float32)
    f0 = default_focal((h, w)) if focal is None else float(focal)
    channels = space.dyn + space.pose
    sigma_x = np.array([SIGMA_GAZE if c.name.startswith("gaze") else SIGMA_LATENT.get(c.unit, 1.0)
                        for c in channels], np.float32)
    # AU intensities and gaze are held to their MotionSpace ranges (a turned head otherwise trades
    # pose error for implausible gaze); pose and learned codes are free.
    bounded = np.array([c.unit == "intensity" or (c.unit == "rad" and c in space.dyn) for c in channels])
    rng = np.maximum(space.high - space.low, 1e-3).astype(np.float32)
    st = _Static(dyn=space.dyn_size, size=space.size, num_identity=model.num_identity,
                 principal=jnp.asarray([w / 2.0, h / 2.0], jnp.float32),
                 log_focal0=jnp.asarray(np.log(f0), jnp.float32),
                 # a known focal length gets a prior so tight that it stays put
                 sigma_log_focal=jnp.asarray(SIGMA_LOG_FOCAL if focal is None else 1e-4, jnp.float32))
    args = (jnp.asarray(sigma_x), jnp.asarray(space.low), jnp.asarray(space.high), jnp.asarray(bounded))

    def frame_data(ids, mask):
        return {"lmk": jnp.asarray(lmk[ids, :, :2]), "iris": jnp.asarray(iris_c[ids]),
                "w_iris": jnp.asarray(iris_w[ids]), "iod": jnp.asarray(iod[ids]),
                "mask": jnp.asarray(mask, jnp.float32),
                "target": jnp.zeros((len(ids), st.size), jnp.float32), "range": jnp.broadcast_to(jnp.asarray(rng), (len(ids), st.size))}

    # Stage 1: identity and camera from up to `keyframes` valid frames spread over the clip.
    good = np.where(valid)[0]
    n_key = min(keyframes, len(good))
    key_ids = good[np.round(np.linspace(0, len(good) - 1, n_key)).astype(int)]
    pad = keyframes if t > 1 else 1
    key_ids_p = np.concatenate([key_ids, np.full(pad - n_key, key_ids[0])])
    key_mask = np.arange(pad) < n_key
    data = frame_data(key_ids_p, key_mask)
    x_key, g = _fit_joint(model, jnp.asarray(lmk[key_ids_p]), data, st, *args, iters=joint_iters,
                          smooth_w=0.0)

    # Stage 2: every frame with g fixed. A single image was solved in stage 1 already.
    if t == 1:
        xs = [np.asarray(x_key)[:1]]
        e, ie = _reproject_jit(x_key[:1], g, {k: v[:1] for k, v in data.items()}, model, st)
        errs, iris_errs = [np.asarray(e)], [np.asarray(ie)]
    else:
        xs, errs, iris_errs = [], [], []
        n_chunk = min(chunk, t)
        for start in range(0, t, n_chunk):
            ids = np.arange(start, min(start + n_chunk, t))
            ids_p = np.concatenate([ids, np.full(n_chunk - len(ids), ids[-1])])
            mask = np.concatenate([valid[ids], np.zeros(n_chunk - len(ids), bool)])
            x, e, ie = _fit_frames(model, jnp.asarray(lmk[ids_p]), frame_data(ids_p, mask), g, st, *args,
                                   iters=frame_iters, smooth_w=float(smooth))
            xs.append(np.asarray(x)[:len(ids)])
            errs.append(np.asarray(e)[:len(ids)])
            iris_errs.append(np.asarray(ie)[:len(ids)])
            if progress is not None:
                progress(int(ids[-1]) + 1)
    x = np.concatenate(xs)
    errs, iris_errs = np.concatenate(errs), np.concatenate(iris_errs)
    if not valid.all():  # frames without landmarks: linear in the frame index between fitted ones
        frame = np.arange(t)
        x = np.stack([np.interp(frame, frame[valid], x[valid, k]) for k in range(x.shape[1])], 1)
        errs[~valid], iris_errs[~valid] = 0.0, 0.0
    g = np.asarray(g)
    b, log_f, centre = g[:st.num_identity], g[st.num_identity], g[st.num_identity + 1:]
    # Re-centre (eq. 2): the clip's mean translation moves into the camera's c.
    tr = slice(space.dyn_size + 3, space.dyn_size + 6)
    mean_t = x[valid, tr].mean(0)
    x[:, tr] -= mean_t
    centre = centre + R_CAMERA @ mean_t
    viewmat = pose_viewmat(R_CAMERA, centre)
    fpx = float(np.exp(log_f))
    kmat = np.asarray(intrinsics(fpx, fpx, w / 2.0, h / 2.0))
    identity = np.einsum("vck,k->vc", np.asarray(model.basis), b)
    identity = identity.reshape(-1) if head.shapedirs is None else _flame_shape(head, b)
    return MotionFit(latents=x.astype(np.float32), identity=identity.astype(np.float32),
                     identity_coefficients=b.astype(np.float32), K=kmat, viewmat=viewmat,
                     image_size=(h, w), residuals_px=errs.astype(np.float32),
                     iris_residuals_px=(iris_errs * (iris_w > 0)).astype(np.float32), iod_px=iod, valid=valid)


def _flame_shape(head: HeadModel, b: np.ndarray) -> np.ndarray:
    out = np.zeros(head.num_shape, np.float32)
    out[:len(b)] = b
    return out
