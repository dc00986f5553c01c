"""Projection and SH against gsplat 1.5.3's own torch reference functions (CPU)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from render_scenes import random_scene

from vasa3d_jax.camera import intrinsics, look_at
from vasa3d_jax.render import Camera, projection, sh

torch = pytest.importorskip("torch")
gsplat_ref = pytest.importorskip("gsplat.cuda._torch_impl")

W, H = 40, 24


def _camera(far=1e10):
    # Off-centre principal point and anisotropic focal lengths exercise the asymmetric J clamp.
    return Camera(viewmat=look_at((0.3, -0.2, 2.0), (0.0, 0.1, 0.0)), K=intrinsics(45.0, 52.0, 17.0, 13.5),
                  width=W, height=H, far=far)


def _scene(key, n=96):
    g = random_scene(key, n, spread=1.2, scale_range=(1e-3, 0.5))
    means = g.means.at[:4].set(jnp.array([[0.0, 0.0, 2.5], [0.0, 0.0, 2.0], [9.0, 0.0, 0.0], [0.0, 0.0, -30.0]]))
    return g.replace(means=means)  # behind the camera, at its centre, far off-screen, beyond far=20


@pytest.mark.parametrize("far", [1e10, 20.0])
def test_projection_matches_gsplat_torch_reference(far):
    g, cam = _scene(jax.random.PRNGKey(3)), _camera(far)
    ours = jax.jit(lambda g: projection.project(g.means, g.quats, g.scales, None, cam.viewmat, cam.K, width=W,
                                                 height=H, far=cam.far))(g)
    t = lambda x: torch.from_numpy(np.array(x, np.float32))
    covars, _ = gsplat_ref._quat_scale_to_covar_preci(t(g.quats), t(g.scales), compute_preci=False)
    radii, means2d, depths, conics, comp = gsplat_ref._fully_fused_projection(
        t(g.means), covars, t(cam.viewmat)[None], t(cam.K)[None], W, H, near_plane=cam.near, far_plane=far,
        calc_compensations=True)
    radii, means2d, depths, conics, comp = (x[0].numpy() for x in (radii, means2d, depths, conics, comp))
    vis = np.all(radii > 0, axis=-1)
    assert 10 < vis.sum() < len(vis), "the scene should mix visible and culled Gaussians"
    np.testing.assert_array_equal(np.asarray(ours.visible), vis)
    np.testing.assert_allclose(np.asarray(ours.radii)[vis], radii[vis], atol=1)
    np.testing.assert_allclose(np.asarray(ours.depths), depths, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(ours.means2d)[vis], means2d[vis], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(ours.conics)[vis], conics[vis], rtol=1e-4, atol=1e-6)
    # sqrt(det0 / det) loses digits when det0 is small (float32 cancellation): gsplat's 1e-4.
    np.testing.assert_allclose(np.asarray(ours.compensations)[vis], comp[vis], rtol=1e-4, atol=1e-4)


def test_opacity_aware_radius_and_antialiased_opacity():
    """Equation (7) of projection.py, checked against the conic from gsplat's torch projection."""
    g, cam = _scene(jax.random.PRNGKey(4)), _camera()
    g = g.replace(opacities=g.opacities.at[:8].set(0.003))  # below 1/255 after compensation: culled
    t = lambda x: torch.from_numpy(np.array(x, np.float32))
    covars, _ = gsplat_ref._quat_scale_to_covar_preci(t(g.quats), t(g.scales), compute_preci=False)
    radii_t, _, _, conics, comp = gsplat_ref._fully_fused_projection(
        t(g.means), covars, t(cam.viewmat)[None], t(cam.K)[None], W, H, calc_compensations=True)
    conics, comp, radii_t = conics[0].numpy().astype(np.float64), comp[0].numpy(), radii_t[0].numpy()
    det = 1.0 / (conics[:, 0] * conics[:, 2] - conics[:, 1] ** 2)
    s00, s11 = conics[:, 2] * det, conics[:, 0] * det  # blurred Sigma2d diagonal
    for aa in (False, True):
        p = jax.jit(lambda g: projection.project(g.means, g.quats, g.scales, g.opacities, cam.viewmat, cam.K,
                                                  width=W, height=H, antialiased=aa))(g)
        op = np.asarray(g.opacities) * (comp if aa else 1.0)
        seen = np.all(radii_t > 0, axis=-1)
        np.testing.assert_allclose(np.asarray(p.opacities)[seen], op[seen], rtol=1e-4, atol=1e-4)
        alive = seen & (op >= 1 / 255)
        ext = np.minimum(3.33, np.sqrt(2 * np.log(np.maximum(op, 1 / 255) * 255)))
        expect = np.stack([np.ceil(ext * np.sqrt(s00)), np.ceil(ext * np.sqrt(s11))], -1)
        got = np.asarray(p.radii)
        assert not np.any(got[op < 1 / 255]), "opacity below 1/255 must be culled"
        both = alive & np.all(got > 0, axis=-1)
        assert both.sum() > 10
        np.testing.assert_allclose(got[both], expect[both], atol=1)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_matches_gsplat_torch_reference(degree):
    k = jax.random.split(jax.random.PRNGKey(degree), 3)
    n = 64
    coeffs = jax.random.normal(k[0], (n, (degree + 1) ** 2, 3))
    means = jax.random.normal(k[1], (n, 3))
    centre = jnp.array([0.3, -1.0, 2.0])
    ours = sh.sh_to_color(coeffs, means, centre)
    dirs = torch.from_numpy(np.array(means - centre))
    ref = gsplat_ref._spherical_harmonics(degree, dirs, torch.from_numpy(np.array(coeffs)))
    ref = torch.clamp_min(ref + 0.5, 0.0).numpy()
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-5, atol=1e-5)
    assert np.any(ref == 0.0) or degree == 0  # the clamp is exercised
