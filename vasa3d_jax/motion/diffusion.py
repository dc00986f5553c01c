"""Gaussian diffusion over motion windows: schedule, forward noising, DDPM and DDIM, guidance.

The denoiser predicts the clean window, as VASA-1 (arXiv 2404.10667 §3.2; paper-notes.md §2.2).
Timesteps are integers t = 1..T, with ᾱ_0 = 1 (no noise).

(1) Schedule, cosine (Nichol & Dhariwal 2021, arXiv 2102.09672, eq. 17):
        ᾱ_t = f(t) / f(0),   f(t) = cos²( (t/T + s) / (1 + s) · π/2 ),   s = 0.008,
        β_t = 1 − ᾱ_t / ᾱ_{t−1}, clipped to ≤ 0.999 (ibid.), α_t = 1 − β_t.
(2) Forward process (Ho et al. 2020, arXiv 2006.11239, eq. 4):
        x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε,   ε ~ N(0, I).
(3) Loss (VASA-1): L = E_{t, x_0, C} ‖x_0 − H(x_t, t, C)‖².
(4) DDPM step t → t−1 with the posterior q(x_{t−1} | x_t, x̂_0) (Ho et al. eq. 6–7):
        μ̃ = √ᾱ_{t−1} β_t / (1 − ᾱ_t) · x̂_0 + √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · x_t,
        β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t,   x_{t−1} = μ̃ + √β̃_t · z.
(5) DDIM step t → s < t (Song et al. 2021, arXiv 2010.02502, eq. 12 and 16):
        ε̂ = (x_t − √ᾱ_t x̂_0) / √(1 − ᾱ_t),
        σ = η · √((1 − ᾱ_s) / (1 − ᾱ_t)) · √(1 − ᾱ_t / ᾱ_s),
        x_s = √ᾱ_s · x̂_0 + √(1 − ᾱ_s − σ²) · ε̂ + σ · z.
    η = 0 is deterministic; η = 1 over every step t → t−1 is exactly the DDPM step (4).
(6) Multi-condition classifier-free guidance (VASA-1 §3.2):
        x̂_0 = (1 + Σ_c λ_c) · H(x_t, t, C) − Σ_c λ_c · H(x_t, t, C|_{c=∅}),
    defaults λ_audio = 0.5, λ_gaze = 1.0. λ_c = 0 ignores the guidance for c (plain conditional
    prediction) and λ_c = −1 removes condition c (the prediction without it). In the "w" convention
    of Ho & Salimans (arXiv 2207.12598), w_c = 1 + λ_c.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

COSINE_S = 0.008  # Nichol & Dhariwal 2021, §3.2: offset that keeps β_1 from being too small
MAX_BETA = 0.999  # ibid.: clip that avoids a singularity at t = T
DEFAULT_TRAIN_STEPS = 50  # VASA-1 samples with 50 steps; training on the same grid makes DDPM exact


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Schedule:
    """Noise schedule on the integer grid t = 0..T.

    alpha_bar: (T+1,) float32, ᾱ_t with ᾱ_0 = 1.
    beta:      (T+1,) float32, β_t with β_0 = 0.
    """

    alpha_bar: jnp.ndarray
    beta: jnp.ndarray

    @property
    def num_steps(self) -> int:
        return self.alpha_bar.shape[0] - 1


def cosine_schedule(num_steps: int = DEFAULT_TRAIN_STEPS) -> Schedule:
    """Eq. (1), computed in float64 and stored in float32."""
    if num_steps < 1:
        raise ValueError(f"{num_steps=} must be at least 1")
    t = np.arange(num_steps + 1, dtype=np.float64)
    f = np.cos((t / num_steps + COSINE_S) / (1 + COSINE_S) * np.pi / 2) ** 2
    alpha_bar = f / f[0]
    beta = np.zeros_like(alpha_bar)
    beta[1:] = np.minimum(1 - alpha_bar[1:] / alpha_bar[:-1], MAX_BETA)
    alpha_bar = np.concatenate([[1.0], np.cumprod(1 - beta[1:])])  # consistent with clipped β
    return Schedule(alpha_bar=jnp.asarray(alpha_bar, jnp.float32), beta=jnp.asarray(beta, jnp.float32))


def q_sample(schedule: Schedule, x0: jnp.ndarray, t: jnp.ndarray, noise: jnp.ndarray) -> jnp.ndarray:
    """Eq. (2). ``x0, noise: (B, ...)``, ``t: (B,)`` int in 1..T."""
    ab = schedule.alpha_bar[t].reshape(t.shape + (1,) * (x0.ndim - t.ndim))
    return jnp.sqrt(ab) * x0 + jnp.sqrt(1 - ab) * noise


def ddpm_step(schedule: Schedule, x_t: jnp.ndarray, x0_hat: jnp.ndarray, t: jnp.ndarray,
              noise: jnp.ndarray) -> jnp.ndarray:
    """Eq. (4): one ancestral step t → t−1 (``t`` a scalar int ≥ 1)."""
    ab_t, ab_prev, beta = schedule.alpha_bar[t], schedule.alpha_bar[t - 1], schedule.beta[t]
    mean = (jnp.sqrt(ab_prev) * beta / (1 - ab_t)) * x0_hat \
        + (jnp.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab_t)) * x_t
    var = (1 - ab_prev) / (1 - ab_t) * beta
    return mean + jnp.sqrt(var) * noise


def ddim_step(schedule: Schedule, x_t: jnp.ndarray, x0_hat: jnp.ndarray, t: jnp.ndarray,
              s: jnp.ndarray, noise: jnp.ndarray, eta: float) -> jnp.ndarray:
    """Eq. (5): one step t → s (``0 ≤ s < t``, scalar ints)."""
    ab_t, ab_s = schedule.alpha_bar[t], schedule.alpha_bar[s]
    eps = (x_t - jnp.sqrt(ab_t) * x0_hat) / jnp.sqrt(1 - ab_t)
    sigma = eta * jnp.sqrt((1 - ab_s) / (1 - ab_t)) * jnp.sqrt(1 - ab_t / ab_s)
    return jnp.sqrt(ab_s) * x0_hat + jnp.sqrt(jnp.maximum(1 - ab_s - sigma**2, 0.0)) * eps \
        + sigma * noise


def ddim_timesteps(num_train_steps: int, num_sample_steps: int) -> np.ndarray:
    """Evenly spaced descending timesteps ``t_1 > ... > t_n`` from T, each step going to the next
    (the last to 0); ``num_sample_steps == num_train_steps`` gives T, T−1, ..., 1."""
    if not 1 <= num_sample_steps <= num_train_steps:
        raise ValueError(f"{num_sample_steps=} must be in [1, {num_train_steps}] (the training steps)")
    ts = np.round(np.linspace(num_train_steps, 0, num_sample_steps + 1)).astype(np.int32)
    return ts


def guided_x0(predictions: jnp.ndarray, scales: Sequence[float]) -> jnp.ndarray:
    """Eq. (6). ``predictions: (1 + C, ...)`` = [full condition, condition c₁ dropped, ...]."""
    if predictions.shape[0] != 1 + len(scales):
        raise ValueError(f"need 1 + {len(scales)} predictions (full, then one per dropped condition), "
                         f"got {predictions.shape[0]}")
    out = (1 + sum(scales)) * predictions[0]
    for i, lam in enumerate(scales):
        out = out - lam * predictions[1 + i]
    return out


def sample_ddpm(schedule: Schedule, denoise: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray],
                shape: tuple[int, ...], key: jax.Array) -> jnp.ndarray:
    """Ancestral sampling with every training step T → 0 (eq. 4). ``denoise(x_t, t) -> x̂_0``."""
    key_init, key_steps = jax.random.split(key)
    x = jax.random.normal(key_init, shape, jnp.float32)
    step_keys = jax.random.split(key_steps, schedule.num_steps)

    def body(i, x):
        t = schedule.num_steps - i
        noise = jax.random.normal(step_keys[i], shape, jnp.float32)
        return ddpm_step(schedule, x, denoise(x, t), t, noise)

    return jax.lax.fori_loop(0, schedule.num_steps, body, x)


def sample_ddim(schedule: Schedule, denoise: Callable[[jnp.ndarray, jnp.ndarray], jnp.ndarray],
                shape: tuple[int, ...], key: jax.Array, num_steps: int, eta: float = 0.0) -> jnp.ndarray:
    """DDIM with ``num_steps`` evenly spaced steps (eq. 5). Uses the same keys as ``sample_ddpm``
    for the initial noise and step i, so η = 1 with every step reproduces it draw for draw."""
    ts = jnp.asarray(ddim_timesteps(schedule.num_steps, num_steps))
    key_init, key_steps = jax.random.split(key)
    x = jax.random.normal(key_init, shape, jnp.float32)
    step_keys = jax.random.split(key_steps, num_steps)

    def body(i, x):
        t, s = ts[i], ts[i + 1]
        noise = jax.random.normal(step_keys[i], shape, jnp.float32) if eta else jnp.zeros(shape)
        return ddim_step(schedule, x, denoise(x, t), t, s, noise, eta)

    return jax.lax.fori_loop(0, num_steps, body, x)
