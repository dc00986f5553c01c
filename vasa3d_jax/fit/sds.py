"""Priors for views the training frames never show: generic score distillation (SDS) over any
denoiser, and the built-in mirrored-view symmetry prior (the default).

**Score distillation** (DreamFusion, Poole et al., ICLR 2023, eq. 3). VASA-3D uses Stable Diffusion
2.1 (paper-notes.md §1.4 [Z]); it cannot be installed here, so the loss takes any noise predictor
``eps_fn(x_t, t, cond) -> eps`` over the same space as ``x`` (pixels, or the latents of the user's
own encoder applied to the render). With the variance-preserving forward process ᾱ_t:

    (1)  t ~ U[t_min, t_max] (integer step),  ε ~ N(0, I),  x_t = sqrt(ᾱ_t) x + sqrt(1 - ᾱ_t) ε
    (2)  ε̂ = ε_θ(x_t, t, ∅) + g · (ε_θ(x_t, t, c) - ε_θ(x_t, t, ∅))             classifier-free guidance
    (3)  ∇_x L_SDS = s · w(t) · (ε̂ - ε),  w(t) = 1 - ᾱ_t                        (no Jacobian of ε_θ)
    (4)  L_SDS = s/2 · Σ_pixels (x - sg[x - w(t)(ε̂ - ε)])² / B                   a surrogate with gradient (3)

with g = 10 the guidance scale and s = 0.001 the gradient scale, on views with azimuth ~ U[-180°,
180°] and elevation ~ U[-22.5°, 22.5°], every 10 steps (VASA-3D's settings, [Z]).

**Mirrored-view symmetry prior.** Let S = diag(-1, 1, 1) reflect the head frame across its sagittal
plane x = 0 (FLAME axes: x to the head's left, y up, z out of the face) and F = diag(-1, 1, 1) flip
the camera's x axis. For a camera (V, K) of an image W pixels wide, the mirrored camera is

    (5)  V' = F V S (in homogeneous form),   K' = K with c_x' = W - c_x      (camera.mirror_camera)

and any scene satisfies render(S·scene, V') = flip_x(render(scene, V)) exactly (pixel centres at
+0.5 map j ↔ W-1-j). A face is close to symmetric (S·scene ≈ scene), so

    (6)  L_sym = mean | render(scene, V') - flip_x(render(scene, V)) |

ties each unseen view to its mirror image. It should be applied to the head in a symmetric motion
state (neutral expression, canonical pose); the trainer does so.

The mirrored camera (5) and the orbit views the priors sample are ``vasa3d_jax.camera``'s
(``mirror_camera``, ``orbit_camera``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


EpsFn = Callable[[jax.Array, jax.Array, Any], jax.Array]


@dataclasses.dataclass(frozen=True)
class SdsConfig:
    """Score-distillation settings; defaults are VASA-3D's (paper-notes.md §1.4 [Z]) unless marked."""

    guidance_scale: float = 10.0  # g in (2), [Z] "CFG 10.0"
    grad_scale: float = 1e-3  # s in (3), [Z] "gradient scale 0.001"
    every: int = 10  # apply SDS every this many steps, [Z]
    azimuth_deg: float = 180.0  # views with azimuth ~ U[-a, a], [Z]
    elevation_deg: float = 22.5  # views with elevation ~ U[-e, e], [Z]
    t_min: float = 0.02  # timestep range as a fraction of the schedule: DreamFusion §3 / App. A.4
    t_max: float = 0.98


@dataclasses.dataclass(frozen=True)
class SdsPrior:
    """A user's denoiser for score distillation (``sds_loss``) and what it is conditioned on.

    eps_fn: (x_t (B, H, W, 3), t (B,) int32, cond) -> predicted noise; it sees renders in [0, 1]
        (wrap it to encode renders into its own space first, e.g. a VAE's latents)
    cond, uncond: the conditioning and the null conditioning (pytrees of arrays, closed over)
    alphas_cumprod: (T,) its forward process (``scaled_linear_alphas_cumprod()`` for SD 2.1)
    """

    eps_fn: EpsFn
    cond: Any
    uncond: Any
    alphas_cumprod: jax.Array


def scaled_linear_alphas_cumprod(num_steps: int = 1000, beta_start: float = 0.00085,
                                 beta_end: float = 0.012) -> jax.Array:
    """ᾱ_t (num_steps,) of the "scaled_linear" schedule of Stable Diffusion 2.1
    (stabilityai/stable-diffusion-2-1 ``scheduler/scheduler_config.json``: 1000 steps, betas
    0.00085..0.012, linear in sqrt(beta))."""
    betas = np.linspace(beta_start ** 0.5, beta_end ** 0.5, num_steps, dtype=np.float64) ** 2
    return jnp.asarray(np.cumprod(1.0 - betas), jnp.float32)


def sds_loss(eps_fn: EpsFn, x: jax.Array, key: jax.Array, cond: Any, uncond: Any,
             alphas_cumprod: jax.Array, config: SdsConfig = SdsConfig()) -> tuple[jax.Array, dict]:
    """Score-distillation loss (4) of a batch ``x`` (B, ...) under the denoiser ``eps_fn``.

    eps_fn:  (x_t (B, ...), t (B,) int32, cond) -> predicted noise (B, ...)
    cond, uncond: the conditioning (e.g. a prompt embedding) and the null conditioning, any pytree
    alphas_cumprod: (T,) ᾱ of the denoiser's forward process
    returns: (scalar loss whose gradient w.r.t. x is (3), aux {"t": (B,), "grad_norm": ()})
    """
    if x.ndim < 2:
        raise ValueError(f"SDS takes a batch (B, ...) of renders or latents; got shape {x.shape}")
    num_steps = alphas_cumprod.shape[0]
    lo = int(math.floor(config.t_min * num_steps))
    hi = int(math.ceil(config.t_max * num_steps))
    if not 0 <= lo < hi <= num_steps:
        raise ValueError(f"SDS timestep range [{config.t_min}, {config.t_max}] of {num_steps} steps "
                         "is empty; use 0 <= t_min < t_max <= 1")
    b = x.shape[0]
    k_t, k_eps = jax.random.split(key)
    t = jax.random.randint(k_t, (b,), lo, hi)  # (1)
    eps = jax.random.normal(k_eps, x.shape, x.dtype)
    a = alphas_cumprod[t].reshape((b,) + (1,) * (x.ndim - 1))
    x_t = jax.lax.stop_gradient(jnp.sqrt(a) * x + jnp.sqrt(1.0 - a) * eps)
    eps_c = eps_fn(x_t, t, cond)
    eps_u = eps_fn(x_t, t, uncond)
    eps_hat = eps_u + config.guidance_scale * (eps_c - eps_u)  # (2)
    grad = jax.lax.stop_gradient((1.0 - a) * (eps_hat - eps))  # (3) without s
    target = jax.lax.stop_gradient(x - grad)
    loss = 0.5 * config.grad_scale * jnp.sum((x - target) ** 2) / b  # (4)
    return loss, {"t": t, "grad_norm": jnp.sqrt(jnp.sum(grad ** 2)) / b}


def sample_sds_view(key: jax.Array, config: SdsConfig = SdsConfig()) -> tuple[jax.Array, jax.Array]:
    """(azimuth, elevation) in radians, uniform over the SDS view ranges."""
    k_a, k_e = jax.random.split(key)
    az = jax.random.uniform(k_a, (), minval=-config.azimuth_deg, maxval=config.azimuth_deg)
    el = jax.random.uniform(k_e, (), minval=-config.elevation_deg, maxval=config.elevation_deg)
    return jnp.deg2rad(az), jnp.deg2rad(el)


def symmetry_loss(render: jax.Array, render_mirrored: jax.Array) -> jax.Array:
    """L_sym (6): mean |render(V') - flip_x(render(V))|; images (..., H, W, 3) -> scalar."""
    if render.shape != render_mirrored.shape:
        raise ValueError(f"symmetry_loss compares renders of one shape; got {render.shape} and "
                         f"{render_mirrored.shape}")
    return jnp.mean(jnp.abs(render_mirrored - jnp.flip(render, axis=-2)))
