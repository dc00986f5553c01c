"""Texture from one photo: where each surface sample was seen, how well, and what fills the rest.

For a sample s (model.py eq. 2) at the photo's latent, projected by the photo's camera to pixel u_s
at depth z_s, with triangle normal n_s and view direction v_s = (camera centre - X_s) / |...|
(portrait-notes.md §2.2):

    (1) w_s = vis_s * matte(u_s) * ramp(n_s . v_s) * part_s
        vis_s  = [z_s <= D(u_s) + DEPTH_TOL_M],  D the z-buffer: the splatted surface's depth
        ramp(c) = smoothstep((c - COS_LOW) / (COS_HIGH - COS_LOW))   (grazing views carry little)
        part_s = 0 for mouth-cavity and teeth samples when the photo's mouth is closed, and for lip
                 (face) samples that land inside the photo's inner-lip polygon when it is open
                 or within a thin band of it (``near_lip_gap``: the lip's inner edge, wet and
                 fringed with teeth; those pixels are teeth and cavity, never lips: §4.2)

Fill for what the photo does not show (§2.4-2.6), on the skin vertices (face, scalp, neck) of the
mesh, with each vertex's own photo colour p_i and confidence w_i (eq. 1 at the vertex), its mirror
partner m(i) (the template is left-right symmetric: the vertex nearest to (-x, y, z)):

    (2) min_c  sum_{(i,j) in E} |c_i - c_j|^2 + LAMBDA sum_i [ w_i |c_i - p_i|^2
                                                 + MIRROR (1 - w_i) w_m(i) |c_i - p_m(i)|^2 ]
                                                 + EPS sum_i |c_i - mean(p)|^2

one sparse screened-Poisson solve (vertex resolution, for colour far from any seen texel): seen vertices keep their colour, the unseen side takes its mirror
partner's, and what neither sees (scalp, back, under the chin) is the harmonic (diffused) blend of
the nearest seen colours, hair from the hair seen around the face. A sample's fill is the
barycentric blend of its triangle's vertex fills; eyes take the template's part colours
(``avatar.template.skin_colors``) instead, and their photo pixels where eq. 1 sees them (the
eyeballs through the lid opening: iris, sclera and catch-light). The mouth interior the photo does
not show is lit and tinted like the photo (a closed-mouth photo's avatar still opens its mouth):

    (5) teeth  = TEETH_IVORY · g · (1 − GUM_SHADE · r) · (k + (1 − k) t²) + cavity · (1 − k) (1 − t²)
        cavity = CAVITY_SHADE · lip_photo · (0.5 + 0.5 t),   g = clip(lum(skin_photo) / lum(SKIN), G_MIN, 1)

with skin_photo, lip_photo the confidence-weighted mean photo colours of the seen face and lip
vertices, and t in [0, 1] the sample's depth in the mouth at rest (1 at the front of the teeth or
the lip contour, 0 at the back), k = TEETH_BACK: back teeth fade into the dark cavity; r in [0, 1]
the height on the tooth from the biting edge (0) to the gum (1); g follows the photo's exposure but
not far below 1 (skin tone is not light: dark skin must not give grey teeth). Teeth the photo
does show keep its brightness with ivory's chroma (eq. 5b: teeth = TEETH_IVORY · lum(photo) /
lum(TEETH_IVORY), blended with eq. 5 by w, and w set to 0 there).

Mirror at full resolution: a skin sample s also has a mirror point, its barycentric coordinates on
the mirror triangle (the partners of its corners), seen by eq. 1 at pixel u'_s with weight w'_s;
where s itself is poorly seen the photo there stands in, and the sample's colour is

    (3) m_s = MIRROR (1 - w_s) w'_s
    (4) c_s = w_s photo(u_s) + m_s photo(u'_s) + (1 - w_s - m_s) fill_s
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage
import scipy.sparse
import scipy.sparse.linalg
import scipy.spatial

from vasa3d_jax.avatar.template import LIPS, SKIN, _inside, skin_colors
from vasa3d_jax.camera import camera_center, project_points
from vasa3d_jax.head import HeadModel
from vasa3d_jax.head import landmarks
from vasa3d_jax.head.geometry import smoothstep, vertex_normals
from vasa3d_jax.portrait.surface import bilinear, sample_gaussians
from vasa3d_jax.render import OverflowReport, capacity_for, render_features, required_capacity, run_checked

DEPTH_TOL_M = 0.006  # a sample within 6 mm behind the z-buffer is seen (splatted depth blends ~mm)
COS_LOW, COS_HIGH = 0.15, 0.5  # §2.2: no weight below cos 0.15, full weight from cos 0.5 (60 deg)
LAMBDA = 100.0  # eq. 2 data weight against unit edge weights: seen colours stay
MIRROR = 0.8  # eq. 2: a mirrored colour counts a little less than a seen one
EPS = 1e-4  # eq. 2: keeps components without any data defined (their mean colour)
MIRROR_TOL_M = 0.002  # a vertex without a partner within 2 mm has none
LIP_BAND = 0.05  # near_lip_gap: the inner lip edge band not taken from an open-mouth photo (ours)
MOUTH_OPEN_RATIO = 0.03  # inner-lip gap / inner mouth width above which the photo's mouth is open
# (a toothy smile, e.g. the astronaut's, measures 0.06: teeth show, they must not go on the lips)
ERODE_PX = 5  # matte erosion (a 5 x 5 minimum filter: 2 px) before it weighs eq. 1
VERTEX_MIN_WEIGHT = 0.4  # eq. 2 data only from vertices seen at least this well
SKIN_REGIONS = ("face", "scalp", "neck")
PART_REGIONS = ("eyes", "mouth", "teeth")
# Eq. 5 (ours): teeth are ivory, not white (natural enamel in photos reads ~0.85/0.80/0.70 of a white
# card); the cavity is the person's lip colour at a third of its brightness; back teeth keep a
# quarter of their colour.
TEETH_IVORY = (0.90, 0.86, 0.76)
CAVITY_SHADE = 0.35
TEETH_BACK = 0.25
GUM_SHADE = 0.35
G_MIN = 0.75


@dataclasses.dataclass(frozen=True)
class Texture:
    """Per-sample texture (numpy). photo_xy (P, 2) px, confidence (P,) (eq. 1), mirror_xy (P, 2) px
    and mirror_confidence (P,) (eq. 3), fill (P, 3), color (P, 3) (eq. 4),
    vertex_fill (V, 3) and vertex_confidence (V,) of eq. 2, mouth_open the photo's lip-gap ratio."""

    photo_xy: np.ndarray
    confidence: np.ndarray
    mirror_xy: np.ndarray
    mirror_confidence: np.ndarray
    fill: np.ndarray
    color: np.ndarray
    vertex_fill: np.ndarray
    vertex_confidence: np.ndarray
    mouth_open: float


def subdivision_levels(head: HeadModel, verts: np.ndarray, camera, spacing_px: float,
                       max_level: int) -> np.ndarray:
    """(F,) L_f: triangles facing the photo's camera get about one sample per spacing_px^2 of
    their projected area (at least 2 on the face); the rest one sample."""
    faces = np.asarray(head.faces)
    xy, z = map(np.asarray, project_points(jnp.asarray(verts), camera.viewmat, camera.K))
    t = xy[faces]
    area = 0.5 * np.abs((t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1])
                        - (t[:, 2, 0] - t[:, 0, 0]) * (t[:, 1, 1] - t[:, 0, 1]))
    centre = np.asarray(camera_center(camera.viewmat), np.float64)
    tri = verts[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    facing = np.einsum("fc,fc->f", n, centre - tri.mean(1)) > 0
    level = np.ceil(np.sqrt(area) / spacing_px)
    level = np.where(facing, level, 1)
    face = np.asarray(head.face_region) == head.region_id("face")
    level = np.where(face, np.maximum(level, 2), level)
    return np.clip(level, 1, max_level).astype(np.int32)


ZBUFFER_OPACITY = 0.999  # the z-buffer's samples are opaque: the nearest surface alone sets D


@functools.partial(jax.jit, static_argnames=("capacity",))
def _depth_map(faces, parent, bary, level, verts, camera, *, capacity):
    g = sample_gaussians(faces, parent, bary, level, verts, opacity=ZBUFFER_OPACITY)
    out = render_features(g, jnp.zeros((g.num, 0)), camera, capacity=capacity)  # depth and alpha alone
    return (out.depth, out.alpha), out.isect_overflow, out.num_isects


def depth_map(head: HeadModel, verts, camera, parent, bary, level):
    """The z-buffer D of eq. 1 ((H, W) metres: the splatted samples' expected depth) and its
    coverage alpha (H, W), sized by the one capacity policy (``render/capacity.py``)."""
    args = (jnp.asarray(head.faces), jnp.asarray(parent), jnp.asarray(bary), jnp.asarray(level),
            jnp.asarray(verts, jnp.float32))
    need = required_capacity(sample_gaussians(*args, opacity=ZBUFFER_OPACITY), camera)
    d, a = run_checked(lambda cap: _depth_map(*args, camera, capacity=cap),
                       OverflowReport(capacity_for(need)), what="the photo's z-buffer")
    return np.asarray(d), np.asarray(a)


def _nearest(img: np.ndarray, xy: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    x = np.clip(np.floor(xy[:, 0]).astype(int), 0, w - 1)
    y = np.clip(np.floor(xy[:, 1]).astype(int), 0, h - 1)
    return img[y, x]


def _bilinear(img: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return np.asarray(bilinear(jnp.asarray(img), jnp.asarray(xy, jnp.float32)))


def seen_weight(points, normals, camera, depth, alpha, matte) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 1 without the part term: (xy (N, 2) px, w (N,)) of points with outward normals."""
    xy, z = map(np.asarray, project_points(jnp.asarray(points, jnp.float32), camera.viewmat, camera.K))
    h, w = depth.shape
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h) & (z > 0)
    vis = inside & (_nearest(alpha, xy) > 0.5) & (z <= _nearest(depth, xy) + DEPTH_TOL_M)
    view = np.asarray(camera_center(camera.viewmat), np.float64) - points
    view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-12)
    nrm = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    cos = np.einsum("nc,nc->n", nrm, view)
    ramp = smoothstep((cos - COS_LOW) / (COS_HIGH - COS_LOW))
    m = _bilinear(matte[..., None], xy)[:, 0]
    return xy, vis * ramp * m


def mirror_partners(head: HeadModel) -> np.ndarray:
    """(V,) the vertex nearest to each vertex's mirror image (-x, y, z) on the rest template, or -1."""
    v = np.asarray(head.v_template, np.float64)
    d, idx = scipy.spatial.cKDTree(v).query(v * np.array([-1.0, 1.0, 1.0]))
    return np.where(d < MIRROR_TOL_M, idx, -1)


def diffuse_fill(faces: np.ndarray, skin: np.ndarray, colour: np.ndarray, weight: np.ndarray,
                 partner: np.ndarray) -> np.ndarray:
    """Eq. 2 over the vertices where ``skin (V,)`` is True, edges of ``faces``: -> (V, 3) fill."""
    nv = len(colour)
    ids = np.where(skin)[0]
    local = -np.ones(nv, np.int64)
    local[ids] = np.arange(len(ids))
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = e[skin[e[:, 0]] & skin[e[:, 1]]]
    i, j = local[e[:, 0]], local[e[:, 1]]
    n = len(ids)
    adj = scipy.sparse.coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    adj = ((adj + adj.T) > 0).astype(np.float64)
    lap = scipy.sparse.diags(np.asarray(adj.sum(1)).ravel()) - adj
    w = weight[ids]
    p = colour[ids]
    has = (partner[ids] >= 0) & skin[np.maximum(partner[ids], 0)]
    pm = np.where(has, partner[ids], 0)
    wm = np.where(has, MIRROR * (1 - w) * weight[pm], 0.0)
    seen = w > 0.05
    mean = p[seen].mean(0) if seen.any() else np.full(3, 0.5)
    diag = LAMBDA * (w + wm) + EPS
    rhs = LAMBDA * (w[:, None] * p + wm[:, None] * colour[pm]) + EPS * mean
    a = (lap + scipy.sparse.diags(diag)).tocsc()
    solve = scipy.sparse.linalg.factorized(a)
    out = np.zeros((nv, 3))
    out[ids] = np.stack([solve(rhs[:, k]) for k in range(3)], 1)
    return np.clip(out, 0.0, 1.0)


def inner_lip_polygon(xy_vertices: np.ndarray) -> np.ndarray:
    """(20, 2) the inner-lip contour (corner, upper lip, corner, lower lip) from projected vertices."""
    return xy_vertices[list(landmarks.LIP_INNER_RING)]


def near_lip_gap(xy: np.ndarray, xy_vertices: np.ndarray) -> np.ndarray:
    """(N,) bool: ``xy`` inside the photo's inner-lip polygon dilated vertically by LIP_BAND of the
    mouth's inner width (the polygon shifted up and down by that much). The lips' inner edge of an
    open-mouth photo is wet, lit and fringed with teeth; on the neutral face it rolls in, and painted
    on the sealed lips it read as a pale band that the face analysis took for parted lips (gap 0.1
    at rest on the astronaut)."""
    poly = inner_lip_polygon(xy_vertices)
    right, left = landmarks.LIP_INNER_CORNERS
    r = LIP_BAND * float(np.linalg.norm(xy_vertices[right] - xy_vertices[left]))
    shift = np.array([0.0, r])
    return _inside(xy, poly) | _inside(xy, poly + shift) | _inside(xy, poly - shift)


def mouth_open_ratio(xy_vertices: np.ndarray) -> float:
    """Inner-lip gap (landmarks 13-14) over the inner mouth width (78-308) in the photo."""
    (upper, lower), (right, left) = landmarks.MOUTH_OPENING, landmarks.LIP_INNER_CORNERS
    gap = np.linalg.norm(xy_vertices[upper] - xy_vertices[lower])
    width = np.linalg.norm(xy_vertices[right] - xy_vertices[left])
    return float(gap / max(width, 1e-6))


def _weighted_mean(colors: np.ndarray, weights: np.ndarray, default: np.ndarray) -> np.ndarray:
    total = float(np.sum(weights))
    return default if total < 1e-6 else (weights[:, None] * colors).sum(0) / total


LUMA = (0.2126, 0.7152, 0.0722)  # Rec. 709 luma weights


def _luminance(rgb) -> float:
    return float(np.dot(rgb, LUMA))


def interior_colors(head: HeadModel, parent: np.ndarray, bary: np.ndarray, skin_rgb: np.ndarray,
                    lip_rgb: np.ndarray) -> np.ndarray:
    """Eq. 5: (P, 3) colours of the mouth interior (teeth and cavity samples; others are returned
    as the cavity colour) from the photo's skin and lip colours."""
    names = head.region_names
    faces = np.asarray(head.faces)
    region = np.asarray(head.face_region)[parent]
    rest = np.asarray(head.v_template, np.float64)
    z = np.einsum("pk,pk->p", bary, rest[faces[parent], 2])
    teeth = region == names.index("teeth")
    cavity = region == names.index("mouth")
    lips = rest[np.asarray(head.landmark_vertices)[list(landmarks.LIP_INNER_UPPER + landmarks.LIP_INNER_LOWER)], 2]

    def depth01(sel, front):
        if not sel.any():
            return np.zeros(len(z))
        back = z[sel].min()
        return np.clip((z - back) / max(front - back, 1e-9), 0.0, 1.0)

    dark = CAVITY_SHADE * np.asarray(lip_rgb, np.float64)
    t_cav = depth01(cavity, lips.mean())
    out = dark[None] * (0.5 + 0.5 * t_cav)[:, None]
    gain = float(np.clip(_luminance(skin_rgb) / _luminance(SKIN), G_MIN, 1.0))
    y = np.einsum("pk,pk->p", bary, rest[faces[parent], 1])
    edge = y[teeth].mean() if teeth.any() else 0.0  # the biting edges meet at the arches' mid-height
    reach = max(float(np.abs(y[teeth] - edge).max()), 1e-9) if teeth.any() else 1.0
    r = np.clip(np.abs(y - edge) / reach, 0.0, 1.0)
    ivory = np.asarray(TEETH_IVORY)[None] * gain * (1.0 - GUM_SHADE * r)[:, None]
    t_teeth = depth01(teeth, z[teeth].max() if teeth.any() else 0.0)
    k = (TEETH_BACK + (1 - TEETH_BACK) * t_teeth ** 2)[:, None]
    out = np.where(teeth[:, None], k * ivory + (1 - k) * dark[None], out)
    return out


def project_texture(head: HeadModel, verts: np.ndarray, camera, image: np.ndarray, matte,
                    parent: np.ndarray, bary: np.ndarray, level: np.ndarray) -> Texture:
    """Eqs. 1-2 for the samples of a head posed at the photo's latent (``verts`` (V, 3))."""
    verts = np.asarray(verts, np.float64)
    faces = np.asarray(head.faces)
    region = np.asarray(head.face_region)
    depth, alpha = depth_map(head, verts, camera, parent, bary, level)
    # Pixels on the matte's edge blend the head with the background: trust only the eroded matte.
    inner_matte = scipy.ndimage.grey_erosion(np.asarray(matte.head, np.float32), size=(ERODE_PX, ERODE_PX))
    tri = verts[faces[parent]]
    points = np.einsum("pk,pkc->pc", bary, tri)
    fn = np.cross(verts[faces[:, 1]] - verts[faces[:, 0]], verts[faces[:, 2]] - verts[faces[:, 0]])
    xy, w = seen_weight(points, fn[parent], camera, depth, alpha, inner_matte)

    xy_v = np.asarray(project_points(jnp.asarray(verts, jnp.float32), camera.viewmat, camera.K)[0])
    ratio = mouth_open_ratio(xy_v)
    is_open = ratio > MOUTH_OPEN_RATIO
    sreg = region[parent]
    names = head.region_names
    inner = np.isin(sreg, [names.index("mouth"), names.index("teeth")])
    if is_open:
        in_gap = near_lip_gap(xy, xy_v)
        w = np.where((sreg == names.index("face")) & in_gap, 0.0, w)
    else:
        w = np.where(inner, 0.0, w)
    photo = _bilinear(image, xy)

    # Eq. 3: the mirror point of every skin sample (mirroring reverses the triangle's winding).
    partner = mirror_partners(head)
    skin_s = np.isin(sreg, [names.index(r) for r in SKIN_REGIONS])
    tri_m = verts[partner[faces[parent]]]
    points_m = np.einsum("pk,pkc->pc", bary, tri_m)
    n_m = -np.cross(tri_m[:, 1] - tri_m[:, 0], tri_m[:, 2] - tri_m[:, 0])
    xy_m, w_m = seen_weight(points_m, n_m, camera, depth, alpha, inner_matte)
    if is_open:
        w_m = np.where((sreg == names.index("face")) & near_lip_gap(xy_m, xy_v), 0.0, w_m)
    m = np.where(skin_s, MIRROR * (1 - w) * w_m, 0.0)

    # Eq. 2 on the skin vertices.
    skin_tri = np.isin(region, [names.index(r) for r in SKIN_REGIONS])
    skin = np.zeros(len(verts), bool)
    skin[faces[skin_tri].ravel()] = True
    vn = vertex_normals(verts, faces[skin_tri])
    xy_vv, w_v = seen_weight(verts, vn, camera, depth, alpha, inner_matte)
    w_v = np.where(w_v >= VERTEX_MIN_WEIGHT, w_v, 0.0)  # grazing colours would dominate eq. 2
    if is_open:  # lip vertices on the inner contour see the gap: trust their neighbours instead
        w_v[list(landmarks.LIP_INNER_RING)] = 0.0
    w_v = np.where(skin, w_v, 0.0)
    c_v = _bilinear(image, xy_vv)
    vfill = diffuse_fill(faces, skin, c_v, w_v, partner)
    fill = np.einsum("pk,pkc->pc", bary, vfill[faces[parent]])
    part = np.isin(sreg, [names.index(r) for r in PART_REGIONS])
    fill = np.where(part[:, None], skin_colors(head)[parent], fill)
    lip_ids = list(landmarks.LIP_OUTER_UPPER + landmarks.LIP_OUTER_LOWER + landmarks.LIP_INNER_UPPER + landmarks.LIP_INNER_LOWER)
    face_v = np.zeros(len(verts), bool)
    face_v[faces[region == names.index("face")].ravel()] = True
    interior = interior_colors(head, parent, bary, _weighted_mean(c_v, w_v * face_v, np.asarray(SKIN)),
                               _weighted_mean(c_v[lip_ids], w_v[lip_ids], np.asarray(LIPS)))
    inside = np.isin(sreg, [names.index("mouth"), names.index("teeth")])
    fill = np.where(inside[:, None], interior, fill)
    # Eq. 5b: seen teeth keep the photo's brightness and take ivory's chroma; the photo's own teeth
    # pixels carry the casts of the lips and the cavity around them (a fitted astronaut's teeth came
    # out grey-green). They go into the fill (w = 0), so the synthesiser shows the same teeth.
    teeth = sreg == names.index("teeth")
    ivory = np.asarray(TEETH_IVORY)
    warm = np.clip(ivory[None] * (photo @ np.asarray(LUMA))[:, None] / _luminance(ivory), 0.0, 1.0)
    fill = np.where(teeth[:, None], w[:, None] * warm + (1 - w)[:, None] * fill, fill)
    w = np.where(teeth, 0.0, w)
    color = w[:, None] * photo + m[:, None] * _bilinear(image, xy_m) + (1 - w - m)[:, None] * fill
    return Texture(photo_xy=xy.astype(np.float32), confidence=w.astype(np.float32),
                   mirror_xy=xy_m.astype(np.float32), mirror_confidence=m.astype(np.float32),
                   fill=fill.astype(np.float32), color=color.astype(np.float32),
                   vertex_fill=vfill.astype(np.float32), vertex_confidence=w_v.astype(np.float32),
                   mouth_open=ratio)
