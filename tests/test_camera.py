"""camera.py's building blocks against independent references: look-at and centres (the eye comes
back), point projection (the renderer's own projection of Gaussian centres), orbit cameras
(distance and direction), pose matrices and the scene extent."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax import camera
from vasa3d_jax.render import projection

# float32 matrices of unit-scale entries: ~1e-6 relative error; metres at 0.6 m -> 1e-5 m is loose.
TOL_M = 1e-5


def test_look_at_is_a_rigid_opencv_camera_whose_centre_is_the_eye():
    eye, target = np.array([0.3, 0.2, 0.5]), np.array([0.0, -0.03, 0.0])
    v = np.asarray(camera.look_at(eye, target), np.float64)
    r = v[:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(camera.camera_center(v), eye, atol=TOL_M)
    forward = (target - eye) / np.linalg.norm(target - eye)
    np.testing.assert_allclose(r[2], forward, atol=1e-6)  # OpenCV: +z looks at the target
    assert r[1] @ np.array([0.0, 1.0, 0.0]) < 0  # image y points down, world up is +y


def test_camera_center_is_batched_and_one_function():
    views = np.stack([camera.sphere_viewmat(a, 10.0) for a in (0.0, 90.0, 200.0)])
    c = np.asarray(camera.camera_center(views))
    assert c.shape == (3, 3)
    np.testing.assert_allclose(np.linalg.norm(c - np.asarray(camera.PIVOT), axis=1), camera.DISTANCE, atol=TOL_M)
    assert camera.camera_center is projection.camera_center  # the renderer's, not a copy


def test_sphere_viewmat_follows_eq_1():
    """Azimuth 90 degrees puts the camera on the head's +x side, elevation on +y."""
    c = np.asarray(camera.camera_center(camera.sphere_viewmat(90.0, 0.0, 0.5, (0.0, 0.0, 0.0))))
    np.testing.assert_allclose(c, [0.5, 0.0, 0.0], atol=TOL_M)
    c = np.asarray(camera.camera_center(camera.sphere_viewmat(0.0, 30.0, 0.5, (0.0, 0.0, 0.0))))
    np.testing.assert_allclose(c, [0.0, 0.5 * math.sin(math.radians(30)), 0.5 * math.cos(math.radians(30))],
                               atol=TOL_M)


def test_project_points_matches_the_renderers_projection():
    """Eq. P against render.projection.project's Gaussian centres (eq. 3 there), batched points too."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(-0.1, 0.1, (32, 3)).astype(np.float32)
    view = camera.look_at((0.1, 0.05, 0.6), (0.0, 0.0, 0.0))
    K = camera.intrinsics(300.0, 280.0, 96.0, 80.0)
    xy, z = camera.project_points(pts, view, K)
    quats = jnp.tile(jnp.asarray([1.0, 0.0, 0.0, 0.0]), (32, 1))
    ref = projection.project(jnp.asarray(pts), quats, jnp.full((32, 3), 1e-3), None, view, K, width=192, height=160)
    np.testing.assert_allclose(np.asarray(xy), np.asarray(ref.means2d), atol=1e-3)  # px, float32 at ~100 px
    np.testing.assert_allclose(np.asarray(z), np.asarray(ref.depths), atol=TOL_M)
    xy2, z2 = camera.project_points(np.stack([pts, pts]), view, K)
    assert xy2.shape == (2, 32, 2) and z2.shape == (2, 32)
    np.testing.assert_allclose(np.asarray(xy2[1]), np.asarray(xy), atol=1e-4)


def test_pose_viewmat_and_camera_from_estimate_agree():
    r = np.asarray(camera.look_at((0.0, 0.0, 0.5), (0.0, 0.0, 0.0)))[:3, :3]
    t = np.array([0.01, -0.02, 0.55])
    v = camera.pose_viewmat(r, t)
    np.testing.assert_allclose(v[:3, :3], r, atol=1e-7)
    np.testing.assert_allclose(v[:3, 3], t, atol=1e-7)
    np.testing.assert_array_equal(v[3], [0, 0, 0, 1])
    cam = camera.camera_from_estimate(np.asarray(camera.intrinsics(100, 100, 32, 32)), r, t, 64, 64)
    np.testing.assert_allclose(np.asarray(cam.viewmat), v, atol=1e-7)


def test_scene_extent_is_the_largest_distance_times_the_factor():
    views = np.stack([camera.sphere_viewmat(a, 0.0, 0.6, (0.0, 0.0, 0.0)) for a in (0.0, 120.0, 240.0)])
    assert camera.scene_extent(views, center=(0.0, 0.0, 0.0)) == pytest.approx(1.1 * 0.6, abs=1e-4)
