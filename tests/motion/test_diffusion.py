"""Diffusion math: schedule, forward process, DDPM vs DDIM, guidance (vasa3d_jax/motion/diffusion.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.motion import diffusion

T = diffusion.DEFAULT_TRAIN_STEPS
SCHEDULE = diffusion.cosine_schedule(T)


def test_schedule_is_monotone_and_ends_at_noise():
    ab = np.asarray(SCHEDULE.alpha_bar, np.float64)
    assert ab[0] == 1.0 and np.all(np.diff(ab) < 0)
    assert ab[-1] < 1e-3  # x_T is (almost) pure noise
    # β and ᾱ agree: ᾱ_t = Π (1 − β_s)
    np.testing.assert_allclose(ab[1:], np.cumprod(1 - np.asarray(SCHEDULE.beta[1:], np.float64)),
                               rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="num_steps"):
        diffusion.cosine_schedule(0)


def test_q_sample_has_the_forward_marginal():
    key = jax.random.key(0)
    x0 = jnp.full((20000, 1), 2.0)
    t = jnp.full((20000,), 20)
    xt = diffusion.q_sample(SCHEDULE, x0, t, jax.random.normal(key, x0.shape))
    ab = float(SCHEDULE.alpha_bar[20])
    np.testing.assert_allclose(float(xt.mean()), 2.0 * np.sqrt(ab), atol=0.03)
    np.testing.assert_allclose(float(xt.std()), np.sqrt(1 - ab), rtol=0.03)


def _denoiser(x, t):
    # An arbitrary smooth, t-dependent x̂_0 map: the DDIM/DDPM identity holds for any denoiser.
    return 0.7 * jnp.tanh(x) + 0.01 * t


def test_ddim_eta1_with_all_steps_is_ddpm():
    key = jax.random.key(3)
    ddpm = diffusion.sample_ddpm(SCHEDULE, _denoiser, (7, 5), key)
    ddim = diffusion.sample_ddim(SCHEDULE, _denoiser, (7, 5), key, num_steps=T, eta=1.0)
    np.testing.assert_allclose(np.asarray(ddim), np.asarray(ddpm), atol=1e-5)
    # and η = 0 is a different (deterministic) path
    ddim0 = diffusion.sample_ddim(SCHEDULE, _denoiser, (7, 5), key, num_steps=T, eta=0.0)
    assert np.abs(np.asarray(ddim0) - np.asarray(ddpm)).max() > 1e-2


def _gaussian_posterior_mean(mu, s):
    """Exact E[x_0 | x_t] for data x_0 ~ N(mu, s²): the ideal x_0 denoiser, an independent reference."""
    def denoise(x, t):
        ab = SCHEDULE.alpha_bar[t]
        gain = jnp.sqrt(ab) * s**2 / (ab * s**2 + 1 - ab)
        return mu + gain * (x - jnp.sqrt(ab) * mu)
    return denoise


def _ddim_std_reference(s, steps):
    """Output std of η = 0 DDIM with the ideal denoiser on N(μ, s²) data, derived by hand: writing
    x_t − √ᾱ_t μ = σ_t u with σ_t² = ᾱ_t s² + 1 − ᾱ_t, one step maps u → cos(θ_t − θ_s) u, where θ_t
    is the angle of (√ᾱ_t s, √(1 − ᾱ_t)); x_T ~ N(0, 1) starts at std(u) = 1/σ_T and σ_0 = s."""
    ab = np.asarray(SCHEDULE.alpha_bar, np.float64)
    ts = diffusion.ddim_timesteps(T, steps)
    theta = np.arctan2(np.sqrt(1 - ab[ts]), np.sqrt(ab[ts]) * s)
    sigma_T = np.sqrt(ab[T] * s**2 + 1 - ab[T])
    return s / sigma_T * np.prod(np.cos(np.diff(theta)))


@pytest.mark.parametrize("s", [0.3, 1.0])
@pytest.mark.parametrize("steps", [5, 10, 50])
def test_ddim_matches_the_gaussian_reference(s, steps):
    mu = 1.5
    x = diffusion.sample_ddim(SCHEDULE, _gaussian_posterior_mean(mu, s), (20000,), jax.random.key(11),
                              num_steps=steps)
    np.testing.assert_allclose(float(x.mean()), mu, atol=0.02 * s)
    np.testing.assert_allclose(float(x.std()), _ddim_std_reference(s, steps), rtol=0.02)


def test_ddpm_reproduces_gaussian_data():
    mu, s = 1.5, 0.3
    x = diffusion.sample_ddpm(SCHEDULE, _gaussian_posterior_mean(mu, s), (20000,), jax.random.key(11))
    np.testing.assert_allclose(float(x.mean()), mu, atol=0.01)
    # Plugging in E[x_0 | x_t] ignores its uncertainty, so 50 steps lose some variance (Bao et al.
    # 2022, Analytic-DPM, arXiv 2201.06503); within 12 % of the data's spread here.
    np.testing.assert_allclose(float(x.std()), s, rtol=0.12)


def test_ddim_is_deterministic_for_a_key():
    a = diffusion.sample_ddim(SCHEDULE, _denoiser, (3, 4), jax.random.key(5), num_steps=7)
    b = diffusion.sample_ddim(SCHEDULE, _denoiser, (3, 4), jax.random.key(5), num_steps=7)
    c = diffusion.sample_ddim(SCHEDULE, _denoiser, (3, 4), jax.random.key(6), num_steps=7)
    # bitwise: determinism (same inputs, same program) is the contract
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.abs(np.asarray(a) - np.asarray(c)).max() > 1e-3


def test_ddim_timesteps():
    np.testing.assert_array_equal(diffusion.ddim_timesteps(50, 50), np.arange(50, -1, -1))
    ts = diffusion.ddim_timesteps(50, 10)
    assert ts[0] == 50 and ts[-1] == 0 and len(ts) == 11 and np.all(np.diff(ts) < 0)
    with pytest.raises(ValueError, match="num_sample_steps"):
        diffusion.ddim_timesteps(50, 51)


def test_guidance_formula():
    rng = np.random.default_rng(0)
    full, no_audio, no_gaze = (jnp.asarray(rng.normal(size=(4, 3))) for _ in range(3))
    preds = jnp.stack([full, no_audio, no_gaze])
    # λ = 0: plain conditional prediction
    np.testing.assert_allclose(diffusion.guided_x0(preds, (0.0, 0.0)), full, atol=1e-6)
    # λ_audio = −1: the prediction without audio
    np.testing.assert_allclose(diffusion.guided_x0(preds[:2], (-1.0,)), no_audio, atol=1e-6)
    # VASA-1 eq.: (1 + Σλ) full − Σ λ_c dropped_c
    expect = 2.5 * full - 0.5 * no_audio - 1.0 * no_gaze
    np.testing.assert_allclose(diffusion.guided_x0(preds, (0.5, 1.0)), expect, atol=1e-5)
    with pytest.raises(ValueError, match="predictions"):
        diffusion.guided_x0(preds, (0.5,))
