"""Fast tests of the portrait model's parts: sample layout, matte geometry, silhouette march, fill."""

import numpy as np
import pytest

from vasa3d_jax.head import landmarks
from vasa3d_jax.portrait import matte as mt
from vasa3d_jax.portrait import hair
from vasa3d_jax.portrait import surface
from vasa3d_jax.portrait import texture as tex


@pytest.mark.parametrize("level", [1, 2, 3, 5])
def test_barycentric_grid_is_the_subtriangle_centroids(level):
    b = surface.barycentric_grid(level)
    assert b.shape == (level * level, 3)
    np.testing.assert_allclose(b.sum(1), 1.0, atol=1e-12)
    assert (b > 0).all()
    # The mean of the L^2 sub-triangle centroids of equal area is the triangle's centroid.
    np.testing.assert_allclose(b.mean(0), [1 / 3] * 3, atol=1e-12)
    assert len(np.unique(np.round(b, 9), axis=0)) == level * level


def test_layout_samples_counts_and_parents():
    levels = np.array([1, 3, 2, 1], np.int32)
    parent, bary, level = surface.layout_samples(levels)
    assert len(parent) == 1 + 9 + 4 + 1
    assert np.all(np.diff(parent) >= 0)
    np.testing.assert_array_equal(np.bincount(parent), levels**2)
    np.testing.assert_array_equal(level, levels[parent])


def test_bilinear_matches_pixel_centres_and_midpoints():
    import jax.numpy as jnp
    img = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    xy = np.array([[0.5, 0.5], [3.5, 2.5], [4.0, 2.5], [3.5, 3.0]], np.float32)
    got = np.asarray(surface.bilinear(jnp.asarray(img), jnp.asarray(xy)))
    want = np.stack([img[0, 0], img[2, 3], 0.5 * (img[2, 3] + img[2, 4]), 0.5 * (img[2, 3] + img[3, 3])])
    np.testing.assert_allclose(got, want, atol=1e-6)


def _disc(h, w, cx, cy, r):
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    return ((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r).astype(np.float32)


def test_silhouette_offsets_measure_the_distance_to_the_matte_edge():
    m = _disc(100, 100, 50, 50, 30)
    ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    d = np.stack([np.cos(ang), np.sin(ang)], 1)
    # Points on a circle of radius 20 (inside: +10 px) and 36 (outside: -6 px), marching outward.
    for radius, want in ((20.0, 10.0), (36.0, -6.0)):
        got = hair.silhouette_offsets(m, 50 + radius * d, d)
        np.testing.assert_allclose(got, want, atol=1.1)


def test_matte_cuts_below_the_chin_and_splits_hair():
    h = w = 64
    person = np.ones((h, w), np.float32)
    lm = np.zeros((468, 3))
    ang = np.linspace(0, 2 * np.pi, len(landmarks.FACE_OVAL), endpoint=False)
    # A face oval of radius 10 around (32, 30), forehead (10) at the top, chin (152) at the bottom.
    oval = np.stack([32 + 10 * np.sin(ang), 30 - 10 * np.cos(ang)], 1)
    lm[list(landmarks.FACE_OVAL), :2] = oval
    lm[landmarks.CHIN, :2] = (32, 40)
    lm[landmarks.CHEEKS[0], :2], lm[landmarks.CHEEKS[1], :2] = (22, 30), (42, 30)
    m = mt.matte_from_person(person, lm)
    face_h, face_w = 20.0, 20.0
    cut = 40 + mt.NECK_KEEP * face_h
    ear = 40 - mt.EAR_LEVEL * face_h
    assert m.head[int(cut) + 2:].max() == 0 and m.head[:int(ear) - 1].min() == 1
    jaw = mt.JAW_HALF_WIDTH * face_w  # between the ear lobes and the chin: the jaw's width only
    assert m.head[37, int(32 + jaw) - 1] == 1 and m.head[37, int(32 + jaw) + 2] == 0
    assert m.head[int(cut) - 1, 32] == 1  # the neck below the chin stays
    half = mt.NECK_HALF_WIDTH * face_w
    assert m.head[42, int(32 + half) + 2] == 0 and m.head[42, int(32 - half) - 2] == 0  # collar
    assert m.face[30, 32] == 1 and m.hair[30, 32] == 0  # face centre: face, not hair
    assert m.hair[5, 32] == 1 and m.hair[30, 5] == 1  # above and beside the face: hair
    assert m.hair[45, 5] == 0 and m.hair[37, 5] == 0  # shoulders / collar beside the jaw: not hair


def test_diffuse_fill_keeps_seen_mirrors_unseen_and_diffuses_the_rest():
    # A strip of 3 x 6 vertices triangulated: columns x = -2.5..2.5, mirror partner = column 5 - c.
    cols, rows = 6, 3
    vid = np.arange(cols * rows).reshape(rows, cols)
    faces = []
    for r in range(rows - 1):
        for c in range(cols - 1):
            a, b, d, e = vid[r, c], vid[r, c + 1], vid[r + 1, c], vid[r + 1, c + 1]
            faces += [[a, b, e], [a, e, d]]
    faces = np.array(faces)
    partner = vid[:, ::-1].ravel()
    colour = np.zeros((cols * rows, 3))
    weight = np.zeros(cols * rows)
    colour[vid[:, 0]] = [1.0, 0.0, 0.0]  # left edge red, seen
    weight[vid[:, 0]] = 1.0
    colour[vid[:, 5]] = [0.0, 0.0, 1.0]  # right edge blue, seen
    weight[vid[:, 5]] = 1.0
    colour[vid[:, 1]] = [0.0, 1.0, 0.0]  # column 1 green, seen; its mirror column 4 is not
    weight[vid[:, 1]] = 1.0
    out = tex.diffuse_fill(faces, np.ones(cols * rows, bool), colour, weight, partner)
    np.testing.assert_allclose(out[vid[:, 0]], [[1, 0, 0]] * rows, atol=0.03)
    np.testing.assert_allclose(out[vid[:, 1]], [[0, 1, 0]] * rows, atol=0.03)
    assert (out[vid[:, 4], 1] > 0.6).all()  # the unseen column took its mirror's green
    # Columns 2-3 are unseen and mirror each other: diffused from their green neighbours (1, 4).
    assert (out[vid[:, 2:4], 1] > 0.8).all() and (out[vid[:, 2:4], 0] < 0.2).all()


def test_person_mask_on_the_astronaut():
    skimage = pytest.importorskip("skimage.data")
    img = skimage.astronaut()
    m = mt.person_mask(img)
    assert m.shape == img.shape[:2] and m.dtype == np.float32
    # Face (x, y ~ (230, 110)) and hair (~(230, 40)) are person; the flag corner and the wall
    # right of the shuttle are not.
    assert m[110, 230] > 0.9 and m[40, 230] > 0.9
    assert m[20, 20] < 0.1 and m[40, 495] < 0.1


def test_photo_registration_puts_the_face_on_the_photo_landmarks():
    """model.py eq. 4: after registration every inner-face landmark vertex projects exactly onto the
    photo's landmark (offsets lie in the image plane at the vertex's depth), the teeth and the scalp
    do not move, and the mouth cavity follows its rim (harmonic)."""
    import jax.numpy as jnp

    from vasa3d_jax.camera import project_points
    from vasa3d_jax.face import encode, synthetic
    from vasa3d_jax.head import template_head
    from vasa3d_jax.portrait import model as md
    from vasa3d_jax.render import Camera

    head = template_head()
    size = (240, 256)
    K, viewmat = synthetic.camera_for(size, encode.default_focal(size), 0.6)
    cam = Camera(viewmat=jnp.asarray(viewmat, jnp.float32), K=jnp.asarray(K, jnp.float32), width=size[1], height=size[0])
    verts = np.asarray(head.v_template)
    xy, _ = project_points(jnp.asarray(verts[:468]), cam.viewmat, cam.K)
    target = np.asarray(xy, np.float64).copy()
    target[list(landmarks.LIP_INNER_LOWER), 1] += 3.0  # the photo's mouth is open 3 px wider than the fit
    target[list(landmarks.LIP_INNER_UPPER), 0] -= 1.0
    offsets = md.photo_registration(head, verts, cam, target)
    moved, _ = project_points(jnp.asarray(verts + offsets)[:468], cam.viewmat, cam.K)
    inner = np.setdiff1d(np.arange(468), landmarks.FACE_OVAL)
    np.testing.assert_allclose(np.asarray(moved)[inner], target[inner], atol=2e-3)  # float32 projection
    region, faces = np.asarray(head.face_region), np.asarray(head.faces)
    for name in ("teeth", "scalp"):
        ids = np.unique(faces[region == head.region_id(name)])
        assert np.abs(offsets[np.setdiff1d(ids, np.arange(468))]).max() == 0.0  # fixed rows are copied
    cavity = np.setdiff1d(np.unique(faces[region == head.region_id("mouth")]), np.arange(468))
    assert np.abs(offsets[cavity]).max() > 1e-4


def test_anchor_mouth_mask_covers_the_lips_and_fades():
    """api.anchor_mouth_mask: 1 on the photo's lips and a margin, 0 far from the mouth, in crop pixels."""
    from vasa3d_jax.portrait import api

    lm = np.zeros((468, 2))
    ring = np.asarray(landmarks.LIP_OUTER_RING)
    angles = np.linspace(0, 2 * np.pi, len(ring), endpoint=False)
    lm[ring] = np.c_[200 + 40 * np.cos(angles), 300 + 15 * np.sin(angles)]  # a 80 x 30 px mouth
    lm[list(landmarks.LIP_OUTER_CORNERS)] = [[160, 300], [240, 300]]
    box = (100.0, 150.0, 200.0)  # x0, y0, side in photo pixels -> a 100 px crop: scale 0.5
    mask = api.anchor_mouth_mask(lm, box, 100)
    assert mask.shape == (100, 100) and mask.dtype == np.float32
    assert mask[75, 50] == 1.0  # the mouth's centre (200, 300) -> crop (50, 75)
    assert mask[75, 50 + 21] == 1.0  # just past the lip corner: inside the margin (0.2 x 40 px = 8 px)
    assert mask[10, 10] == 0.0 and mask[75, 95] == 0.0
    assert 0.0 < mask[75, 50 + 20 + 12] < 1.0  # the feather
