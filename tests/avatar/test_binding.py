"""Triangle frames, quaternion helpers and the local->world binding, against independent references
(scipy's Rotation and a NumPy transcription of GaussianAvatars' formulas)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vasa3d_jax.avatar import binding as bnd
from vasa3d_jax.geometry import rodrigues
from vasa3d_jax.avatar import gaussians as gs


def _wxyz(r: Rotation) -> np.ndarray:
    xyzw = r.as_quat()
    return np.concatenate([xyzw[..., 3:], xyzw[..., :3]], -1)


def test_quaternion_helpers_match_scipy():
    ra, rb = Rotation.random(64, random_state=1), Rotation.random(64, random_state=2)
    qa, qb = _wxyz(ra), _wxyz(rb)
    np.testing.assert_allclose(bnd.quat_to_rotmat(jnp.asarray(qa)), ra.as_matrix(), atol=1e-6)
    prod = np.asarray(bnd.quat_multiply(jnp.asarray(qa), jnp.asarray(qb)))
    np.testing.assert_allclose(Rotation.from_quat(np.roll(prod, -1, -1)).as_matrix(),
                               (ra * rb).as_matrix(), atol=1e-6)
    # Includes near-180-degree rotations, where a trace-only formula breaks down.
    mats = np.concatenate([ra.as_matrix(), Rotation.from_rotvec(
        np.array([[np.pi - 1e-4, 0, 0], [0, np.pi, 0], [0.0, 0.0, -np.pi + 1e-3]])).as_matrix()])
    q = np.asarray(bnd.rotmat_to_quat(jnp.asarray(mats, jnp.float32)))
    ref = _wxyz(Rotation.from_matrix(mats))
    np.testing.assert_allclose(np.abs(np.sum(q * ref, -1)), 1.0, atol=1e-6)
    assert np.all(q[:, 0] >= 0)
    rv = Rotation.random(16, random_state=3).as_rotvec()
    np.testing.assert_allclose(rodrigues(jnp.asarray(rv)),
                               Rotation.from_rotvec(rv).as_matrix(), atol=1e-6)
    np.testing.assert_allclose(bnd.axis_angle_to_quat(jnp.zeros(3)), [1, 0, 0, 0])
    g = jax.grad(lambda v: bnd.axis_angle_to_quat(v).sum())(jnp.zeros(3))
    assert np.all(np.isfinite(g))


def _frames_numpy(v, f):
    """GaussianAvatars' compute_face_orientation + face scaling, transcribed to NumPy."""
    v0, v1, v2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    a0 = (v1 - v0) / np.linalg.norm(v1 - v0, axis=-1, keepdims=True)
    n = np.cross(a0, v2 - v0)
    a1 = n / np.linalg.norm(n, axis=-1, keepdims=True)
    c = np.cross(a1, a0)
    a2 = -c / np.linalg.norm(c, axis=-1, keepdims=True)
    rot = np.stack([a0, a1, a2], -1)
    k = (np.linalg.norm(v1 - v0, axis=-1) + np.abs(np.sum(a2 * (v2 - v0), -1))) / 2
    return rot, k, (v0 + v1 + v2) / 3


def test_triangle_frames_and_local_to_world(template):
    # The template in a non-neutral state (jaw open, brows raised, head turned).
    expr = np.zeros(template.num_expression, np.float32)
    expr[[0, 17]] = 0.8
    pose = np.zeros(15, np.float32)
    pose[:3] = [0.2, -0.4, 0.1]
    v = np.asarray(template.vertices(jnp.zeros(template.num_shape), jnp.asarray(expr),
                                     jnp.asarray(pose)), np.float64)
    f = template.faces
    fr = bnd.triangle_frames(jnp.asarray(v, jnp.float32), jnp.asarray(f))
    rot, k, cen = _frames_numpy(v, f)
    np.testing.assert_allclose(fr.rotations, rot, atol=2e-5)
    np.testing.assert_allclose(fr.scales, k, rtol=1e-5)
    np.testing.assert_allclose(fr.centroids, cen, atol=1e-7)
    np.testing.assert_allclose(np.linalg.det(np.asarray(fr.rotations)), 1.0, atol=1e-5)
    np.testing.assert_allclose(bnd.quat_to_rotmat(fr.quats), rot, atol=2e-5)

    rng = np.random.default_rng(1)
    n = 50
    parent = rng.integers(0, len(f), n)
    mu_l, s_l = rng.normal(size=(n, 3)), 0.3 * rng.normal(size=(n, 3))
    q_l = rng.normal(size=(n, 4))
    means, quats, scales = bnd.local_to_world(
        jnp.asarray(mu_l, jnp.float32), jnp.asarray(q_l, jnp.float32), jnp.asarray(s_l, jnp.float32),
        bnd.gather_frames(fr, jnp.asarray(parent)))
    np.testing.assert_allclose(means, k[parent, None] * np.einsum("nij,nj->ni", rot[parent], mu_l)
                               + cen[parent], atol=1e-6)
    np.testing.assert_allclose(scales, k[parent, None] * np.exp(s_l), rtol=1e-5)
    ref = Rotation.from_matrix(rot[parent]) * Rotation.from_quat(np.roll(q_l, -1, -1))
    np.testing.assert_allclose(bnd.quat_to_rotmat(quats), ref.as_matrix(), atol=2e-5)
    back = bnd.world_to_local_means(means, bnd.gather_frames(fr, jnp.asarray(parent)))
    np.testing.assert_allclose(back, mu_l, atol=1e-4)


def test_init_places_gaussians_inside_their_triangles(template):
    v, f = template.v_template, template.faces
    g, b = gs.init_bound_gaussians(jax.random.key(0), v, f, per_triangle=3, bucket=256)
    n = 3 * len(f)
    assert g.capacity == gs.bucket_capacity(n, 256) and g.capacity % 256 == 0
    assert int(b.active.sum()) == n and not bool(b.active[n:].any())
    np.testing.assert_array_equal(b.parent[:n], np.repeat(np.arange(len(f)), 3))
    fr = bnd.gather_frames(bnd.triangle_frames(jnp.asarray(v, jnp.float32), jnp.asarray(f)), b.parent)
    means, _, scales = bnd.local_to_world(g.means_local, g.quats_local, g.log_scales, fr)
    # Barycentric coordinates of each mean in its parent triangle are all in [0, 1].
    tri = np.asarray(v)[np.asarray(f)[np.asarray(b.parent[:n])]]
    e1, e2, p = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], np.asarray(means[:n]) - tri[:, 0]
    m = np.stack([e1, e2, np.cross(e1, e2)], -1)
    bary = np.linalg.solve(m, p[..., None])[..., 0]
    assert bary[:, :2].min() > -1e-3 and (bary[:, 0] + bary[:, 1]).max() < 1 + 1e-3
    np.testing.assert_allclose(np.abs(bary[:, 2]) * np.linalg.norm(np.cross(e1, e2), axis=-1),
                               0, atol=1e-6)  # in the plane
    np.testing.assert_allclose(jax.nn.sigmoid(g.opacity_logits[:n]), 0.1, rtol=1e-6)
    np.testing.assert_allclose(scales[:n], np.asarray(fr.scales[:n, None]) / np.sqrt(3) *
                               np.ones((1, 3)), rtol=1e-5)
    with pytest.raises(ValueError, match="colors must be"):
        gs.init_bound_gaussians(jax.random.key(0), v, f, colors=np.zeros((5, 3)))
