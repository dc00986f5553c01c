"""Score distillation with an analytic denoiser, and the mirrored-view symmetry prior."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vasa3d_jax import camera as cameras
from vasa3d_jax.fit import sds
from vasa3d_jax.render.types import Camera

ALPHAS = sds.scaled_linear_alphas_cumprod()
DATA_STD = 0.2


def gaussian_eps(x_t, t, mean):
    """The optimal noise prediction when the data are N(mean, DATA_STD² I):
    x_t ~ N(sqrt(ā) mean, ā σ² + 1 - ā), so ε̂ = sqrt(1 - ā) (x_t - sqrt(ā) mean) / (ā σ² + 1 - ā)."""
    a = ALPHAS[t].reshape((-1,) + (1,) * (x_t.ndim - 1))
    return jnp.sqrt(1 - a) * (x_t - jnp.sqrt(a) * mean) / (a * DATA_STD ** 2 + 1 - a)


def _descend(x0, cond, uncond, config, steps=300, lr=3e2):
    opt = optax.sgd(lr)

    def body(carry, key):
        x, s = carry
        g = jax.grad(lambda v: sds.sds_loss(gaussian_eps, v, key, cond, uncond, ALPHAS, config)[0])(x)
        u, s = opt.update(g, s)
        return (optax.apply_updates(x, u), s), None

    (x, _), _ = jax.lax.scan(body, (x0, opt.init(x0)), jax.random.split(jax.random.PRNGKey(7), steps))
    return x


_descend_jit = jax.jit(_descend, static_argnames=("config", "steps"))


def test_schedule_matches_stable_diffusion():
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000) ** 2
    np.testing.assert_allclose(np.asarray(ALPHAS)[[0, 499, 999]], np.cumprod(1 - betas)[[0, 499, 999]], rtol=1e-5)


def test_sds_moves_a_render_toward_the_mode():
    mode = jnp.full((1, 8, 8, 3), 0.6)
    x0 = jax.random.uniform(jax.random.PRNGKey(0), mode.shape)
    x = _descend_jit(x0, mode, mode, sds.SdsConfig())
    before = float(jnp.mean(jnp.abs(x0 - mode)))
    after = float(jnp.mean(jnp.abs(x - mode)))
    assert after < 0.2 * before, (before, after)


def test_guidance_extrapolates_as_cfg_predicts():
    # With ε̂ = ε̂_u + g (ε̂_c - ε̂_u) and Gaussian data, E[∇] ∝ x - (m_u + g (m_c - m_u)) at every t.
    m_u, m_c, g = 0.3, 0.4, 2.0
    x0 = jnp.full((1, 4, 4, 3), 0.5)
    x = _descend_jit(x0, jnp.full_like(x0, m_c), jnp.full_like(x0, m_u), sds.SdsConfig(guidance_scale=g))
    np.testing.assert_allclose(float(jnp.mean(x)), m_u + g * (m_c - m_u), atol=0.03)


def test_gradient_is_the_scaled_score_residual():
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 4, 4, 3))
    key = jax.random.PRNGKey(2)
    mean = jnp.full_like(x, 0.5)

    @jax.jit
    def grads(v):
        return [jax.grad(lambda u: sds.sds_loss(gaussian_eps, u, key, mean, mean, ALPHAS,
                                                sds.SdsConfig(grad_scale=s))[0])(v) for s in (1e-3, 2e-3)]

    g1, g2 = grads(x)
    np.testing.assert_allclose(np.asarray(g2), 2 * np.asarray(g1), rtol=1e-5)
    # The denoiser's Jacobian is skipped: the gradient is s·w(t)·(ε̂ - ε) / B, with ε recovered
    # from x_t as the denoiser saw it.
    seen = {}

    def recording_eps(x_t, t, mean):
        seen["x_t"], seen["t"] = x_t, t
        return gaussian_eps(x_t, t, mean)

    _, aux = sds.sds_loss(recording_eps, x, key, mean, mean, ALPHAS, sds.SdsConfig(grad_scale=1e-3))
    a = ALPHAS[aux["t"]][:, None, None, None]
    eps = (seen["x_t"] - jnp.sqrt(a) * x) / jnp.sqrt(1 - a)
    expected = 1e-3 * (1 - a) * (gaussian_eps(seen["x_t"], aux["t"], mean) - eps) / 2
    np.testing.assert_allclose(np.asarray(g1), np.asarray(expected), atol=2e-6)


def test_view_sampling_ranges():
    keys = jax.random.split(jax.random.PRNGKey(0), 200)
    az, el = jax.vmap(sds.sample_sds_view)(keys)
    assert float(jnp.abs(az).max()) <= np.pi and float(jnp.abs(az).max()) > 0.8 * np.pi
    assert float(jnp.abs(el).max()) <= np.deg2rad(22.5) + 1e-6


def _camera():
    k = jnp.array([[60.0, 0, 30.0], [0, 60.0, 20.0], [0, 0, 1]])
    view = jnp.eye(4).at[:3, 3].set(jnp.array([0.01, -0.02, 0.6]))
    return Camera(viewmat=view, K=k, width=64, height=40)


def _project(cam, p):
    q = cam.viewmat[:3, :3] @ p + cam.viewmat[:3, 3]
    uv = cam.K @ (q / q[2])
    return uv[:2], q[2]


def test_mirror_camera_flips_the_reflected_scene():
    cam = _camera()
    mirrored = cameras.mirror_camera(cameras.orbit_camera(cam, 0.3, -0.1, jnp.zeros(3)))
    base = cameras.orbit_camera(cam, 0.3, -0.1, jnp.zeros(3))
    for p in jax.random.normal(jax.random.PRNGKey(0), (5, 3)) * 0.1:
        uv, z = _project(base, p)
        uv_m, z_m = _project(mirrored, p * jnp.array([-1.0, 1.0, 1.0]))
        np.testing.assert_allclose(np.asarray(uv_m), [cam.width - uv[0], uv[1]], atol=1e-4)
        np.testing.assert_allclose(float(z_m), float(z), atol=1e-6)
    # Rotation part stays a proper rotation.
    np.testing.assert_allclose(float(jnp.linalg.det(mirrored.viewmat[:3, :3])), 1.0, atol=1e-5)


def test_orbit_camera_keeps_the_pivot_and_rotates_about_it():
    cam = _camera()
    pivot = jnp.array([0.0, 0.02, -0.01])
    orbit = cameras.orbit_camera(cam, jnp.deg2rad(90.0), 0.0, pivot)
    np.testing.assert_allclose(np.asarray(_project(orbit, pivot)[0]), np.asarray(_project(cam, pivot)[0]), atol=1e-4)
    # A point in front of the pivot (+z, the face) moves to +x of the pivot after a 90° yaw.
    uv, _ = _project(orbit, pivot + jnp.array([0.0, 0.0, 0.05]))
    uv_ref, _ = _project(cam, pivot + jnp.array([0.05, 0.0, 0.0]))
    np.testing.assert_allclose(np.asarray(uv), np.asarray(uv_ref), atol=1e-4)
    np.testing.assert_allclose(np.asarray(cameras.orbit_camera(cam, 0.0, 0.0, pivot).viewmat),
                               np.asarray(cam.viewmat), atol=1e-6)


def test_symmetry_loss():
    img = jax.random.uniform(jax.random.PRNGKey(0), (2, 8, 6, 3))
    # bitwise: a flip is exact, so a mirrored image has zero loss
    assert float(sds.symmetry_loss(img, jnp.flip(img, axis=-2))) == 0.0
    a = jnp.zeros((4, 4, 3)).at[:2, :2].set(1.0)  # top-left quadrant white
    # Its flip is white top-right, so the top half differs by 1 and the bottom half agrees.
    np.testing.assert_allclose(float(sds.symmetry_loss(a, a)), 0.5)
    with pytest.raises(ValueError, match="one shape"):
        sds.symmetry_loss(a, a[:2])
