"""Hair geometry without a prior: a shell, the template's scalp pushed out to the photo's silhouette.

portrait-notes.md §3.3: the bald template must not cut the head off at its own outline. For every
scalp vertex i on the silhouette of the photo's view (|n_i . v_i| < SILHOUETTE_COS, n_i the posed
vertex normal, v_i the view direction), march from its projection u_i along the projected normal
direction d_i = normalize((R n_i)_xy) to the head-and-hair matte's boundary (matte = 0.5):

    (1) delta_i = signed distance in pixels (> 0: the matte reaches beyond the head, i.e. hair)
    (2) t_i = clip(delta_i z_i / (f |(R n_i)_xy|), -MAX_INWARD_M, MAX_OUTWARD_M)

a displacement t along the normal moves the silhouette by t f |(R n)_xy| / z pixels, so (2) makes
the silhouette meet the matte. The thickness of the other scalp vertices is the harmonic extension
(head/geometry.py eq. 1) of the silhouette values, with 0 on the face and the neck, then tapered
towards the nape

    (3) t_i <- t_i smoothstep((y_i - NAPE_Y_M) / (EAR_Y_M - NAPE_Y_M))      (rest-frame height y)

and the identity offsets gain t_i n_i^rest (model.py), so the hair shell moves rigidly with the head
and the photo's hair pixels land on it (texture.py).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from vasa3d_jax.head import HeadModel, geometry
from vasa3d_jax.head.geometry import smoothstep, vertex_normals

SILHOUETTE_COS = 0.25  # vertices within ~15 degrees of grazing measure the silhouette
MIN_PROJECTED = 0.9  # and their normal must lie mostly in the image plane
MAX_OUTWARD_M = 0.08  # hair volume beyond the scalp: up to 8 cm (big hair), more is a matte error
MAX_INWARD_M = 0.01  # the template's cranium may shrink by at most 1 cm towards a tight matte
MARCH_MAX_PX = 200.0  # search range along the normal, pixels
MARCH_STEP_PX = 0.5
# Rest-frame heights (head frame, metres): the template's ear level (TMJ, head/template.py: canonical
# y 0 -> -0.015 m) and the nape, 1.5 cm above the chin line (canonical chin y -9.4 cm -> -0.109 m).
EAR_Y_M = -0.015
NAPE_Y_M = -0.095


def _matte_at(matte: np.ndarray, xy: np.ndarray) -> np.ndarray:
    h, w = matte.shape
    x = np.floor(xy[..., 0]).astype(int)
    y = np.floor(xy[..., 1]).astype(int)
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    return np.where(inside, matte[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)], 0.0)


def silhouette_offsets(matte: np.ndarray, xy: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Eq. 1: signed pixel distance from each point ``xy (N, 2)`` along ``direction (N, 2)`` (unit)
    to the matte's 0.5 boundary; positive when the point lies inside the matte."""
    steps = np.arange(-MARCH_MAX_PX, MARCH_MAX_PX + MARCH_STEP_PX, MARCH_STEP_PX)
    pts = xy[:, None, :] + steps[None, :, None] * direction[:, None, :]
    inside = _matte_at(matte, pts) >= 0.5  # (N, S)
    centre = len(steps) // 2
    out = np.zeros(len(xy))
    for i in range(len(xy)):  # a few hundred vertices: plain loops read best
        row = inside[i]
        if row[centre]:
            after = np.where(~row[centre:])[0]
            out[i] = steps[centre + after[0]] if len(after) else MARCH_MAX_PX
        else:
            before = np.where(row[:centre])[0]
            out[i] = steps[before[-1]] if len(before) else 0.0
    return out


def shell_thickness(head: HeadModel, verts: np.ndarray, camera, matte: np.ndarray) -> np.ndarray:
    """Eqs. 1-3: (V,) hair-shell offsets in metres along the rest normals, from the head posed at
    the photo's latent (``verts`` (V, 3)), the photo's camera and its head-and-hair matte (H, W)."""
    verts = np.asarray(verts, np.float64)
    faces = np.asarray(head.faces)
    region = np.asarray(head.face_region)
    names = head.region_names
    skin_tri = np.isin(region, [names.index(n) for n in ("face", "scalp", "neck")])
    nv = len(verts)

    def verts_of(name):
        m = np.zeros(nv, bool)
        m[faces[region == names.index(name)].ravel()] = True
        return m

    face_v, scalp_v, neck_v = verts_of("face"), verts_of("scalp"), verts_of("neck")
    scalp_only = scalp_v & ~face_v & ~neck_v
    vm = np.asarray(camera.viewmat, np.float64)
    k = np.asarray(camera.K, np.float64)
    rot, trans = vm[:3, :3], vm[:3, 3]
    normals = vertex_normals(verts, faces[skin_tri])
    cam = verts @ rot.T + trans
    z = cam[:, 2]
    xy = cam[:, :2] / z[:, None] * np.array([k[0, 0], k[1, 1]]) + k[:2, 2]
    n_cam = normals @ rot.T
    view = -cam / np.linalg.norm(cam, axis=1, keepdims=True)
    cos = np.einsum("nc,nc->n", n_cam, view)
    proj = np.linalg.norm(n_cam[:, :2], axis=1)
    sil = scalp_only & (np.abs(cos) < SILHOUETTE_COS) & (proj > MIN_PROJECTED) & (z > 0)
    ids = np.where(sil)[0]
    direction = n_cam[ids, :2] / proj[ids, None]
    delta = silhouette_offsets(np.asarray(matte, np.float64), xy[ids], direction)
    f = 0.5 * (k[0, 0] + k[1, 1])
    t_sil = np.clip(delta * z[ids] / (f * proj[ids]), -MAX_INWARD_M, MAX_OUTWARD_M)

    fixed = ~scalp_only  # face, neck, eyes, mouth, teeth: no shell
    values = np.zeros((nv, 1))
    fixed[ids] = True
    values[ids, 0] = t_sil
    t = geometry.harmonic_extension(faces[skin_tri], nv, fixed, values)[:, 0]
    rest_y = np.asarray(head.v_template)[:, 1]
    t = t * smoothstep((rest_y - NAPE_Y_M) / (EAR_Y_M - NAPE_Y_M))
    return np.where(scalp_only, t, 0.0).astype(np.float32)


def rest_normals(head: HeadModel, shape) -> np.ndarray:
    """(V, 3) unit vertex normals of the identity head at zero expression and pose."""
    rest = np.asarray(head.vertices(jnp.asarray(shape), jnp.zeros(head.num_expression), jnp.zeros(15)))
    faces = np.asarray(head.faces)
    names = head.region_names
    skin_tri = np.isin(np.asarray(head.face_region), [names.index(n) for n in ("face", "scalp", "neck")])
    return vertex_normals(rest, faces[skin_tri])
