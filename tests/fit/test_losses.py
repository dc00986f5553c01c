"""The fitting objective's terms against hand-computed values, and the weight phases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.fit import cas as cas_lib
from vasa3d_jax.fit import losses
from vasa3d_jax.fit import lpips as lpips_lib
from vasa3d_jax.fit import ssim as ssim_lib


@pytest.fixture(scope="module")
def lpips_vars():
    return lpips_lib.load_params()


def test_reconstruction():
    x = jnp.full((2, 16, 16, 3), 0.5)
    y = jnp.full((2, 16, 16, 3), 0.25)
    assert float(losses.reconstruction_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(float(losses.reconstruction_loss(x, y, losses.LossConfig(dssim=0.0))),
                               0.9 * 0.25, rtol=1e-6)
    expected = 0.9 * 0.25 + 0.1 * float(jnp.mean(1.0 - ssim_lib.ssim(x, y)))
    np.testing.assert_allclose(float(losses.reconstruction_loss(x, y)), expected, rtol=1e-6)


def test_psnr():
    x = jnp.zeros((4, 4, 3))
    np.testing.assert_allclose(float(losses.psnr(x + 0.1, x)), 20.0, rtol=1e-5)  # mse 0.01


def test_position_and_scale_regularisers():
    mu = jnp.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0], [0.6, 0.8, 0.0]])  # norms 0, 5, 1
    np.testing.assert_allclose(float(losses.position_regulariser(mu)), 4.0 / 3.0, rtol=1e-6)
    # the masked norms are 0 and |(0.6, 0.8)| = 1 up to float32 rounding (1 ulp ~ 1.2e-7)
    assert abs(float(losses.position_regulariser(mu, mask=jnp.array([True, False, True])))) <= 1e-6
    s = jnp.log(jnp.array([[0.5, 0.5, 0.5], [1.0, 0.6, 0.6], [0.9, 1.0, 0.2]]))
    # relu(exp(s) - 0.6) rows: 0; (0.4, 0, 0); (0.3, 0.4, 0) -> norms 0, 0.4, 0.5.
    np.testing.assert_allclose(float(losses.scale_regulariser(s)), 0.3, rtol=1e-5)
    # Gradients are finite where the norm is 0 (every Gaussian at its triangle's centre at init).
    g_mu = jax.grad(losses.position_regulariser)(jnp.zeros((3, 3)))
    g_s = jax.grad(losses.scale_regulariser)(s)
    assert np.all(np.isfinite(np.asarray(g_mu))) and np.all(np.isfinite(np.asarray(g_s)))
    np.testing.assert_allclose(np.asarray(g_s[2]), [0.3 / 0.5 * 0.9 / 3, 0.4 / 0.5 * 1.0 / 3, 0.0], rtol=1e-5)


def test_residual_penalty():
    res = {"means": jnp.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), "opacities": jnp.array([0.5, 0.0])}
    # means: (1 + 4) / 2; opacities: (0.25 + 0) / 2.
    np.testing.assert_allclose(float(losses.residual_penalty(res)), 2.5 + 0.125, rtol=1e-6)
    np.testing.assert_allclose(float(losses.residual_penalty(res, mask=jnp.array([True, False]))), 1.25, rtol=1e-6)
    with pytest.raises(ValueError):
        losses.residual_penalty({})


def test_weights_and_phases():
    cfg = losses.LossConfig(main_steps=10, sharpen_steps=5)
    w_main, w_sharp = cfg.weights(9), cfg.weights(jnp.int32(10))
    assert float(w_main["sharpening"]) == 0.0 and float(w_sharp["sharpening"]) == 10.0
    assert float(w_main["l1"]) == pytest.approx(0.9) and float(w_main["adversarial"]) == pytest.approx(1e-3)
    assert cfg.total_steps == 15
    terms = {"l1": jnp.float32(2.0), "consistency": jnp.float32(3.0)}
    np.testing.assert_allclose(float(losses.weighted_total(terms, w_main)), 0.9 * 2 + 0.01 * 3, rtol=1e-6)
    with pytest.raises(ValueError, match="no weight"):
        losses.weighted_total({"bogus": jnp.float32(1.0)}, w_main)
    with pytest.raises(ValueError, match=">= 0"):
        losses.LossConfig(lpips=-1.0)


@jax.jit
def _stop_gradient_probe(lpips_vars, final, base):
    """Gradients of L_consist w.r.t. both renders, of L_cas, and of LPIPS to a constant CAS target
    (one compilation for all four VGG backward passes)."""
    g_final, g_base = jax.grad(losses.render_consistency_loss, argnums=(1, 2))(lpips_vars, final, base)
    g_sharp = jax.grad(losses.sharpening_loss, argnums=1)(lpips_vars, final)
    target = jax.lax.stop_gradient(cas_lib.cas(final))
    g_ref = jax.grad(losses.lpips_loss, argnums=1)(lpips_vars, final, target)
    return g_final, g_base, g_sharp, g_ref


def test_consistency_and_sharpening_stop_gradients(lpips_vars):
    k0, k1 = jax.random.split(jax.random.PRNGKey(0))
    final = jax.random.uniform(k0, (1, 16, 16, 3))
    base = jax.random.uniform(k1, (1, 16, 16, 3))
    g_final, g_base, g_sharp, g_ref = _stop_gradient_probe(lpips_vars, final, base)
    # L_consist moves only the G'' render; G' is the frozen anchor.
    assert float(jnp.abs(g_base).max()) == 0.0 and float(jnp.abs(g_final).max()) > 0.0
    # L_cas differentiates only the render, CAS(render) is a constant target.
    assert float(jnp.abs(g_sharp).max()) > 0.0
    np.testing.assert_allclose(np.asarray(g_sharp), np.asarray(g_ref), atol=1e-6)
