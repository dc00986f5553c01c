"""The fitting losses of VASA-3D (paper-notes.md §1.4) and their weights and phases.

Every image term is applied to the renders of both G′ (base deformation) and G″ (base + residual):

    (1)  L_recon   = 0.9 · L1(I, I_gt) + 0.1 · D-SSIM(I, I_gt)                   [Z] λ_ssim = 0.1
    (2)  L_lpips   = LPIPS_VGG(I, I_gt)                                           [Z] weight 1.0
    (3)  L_adv     = hinge generator loss of 3 patch discriminators               [Z] weight 0.001
    (4)  L_consist = LPIPS(I_novel(G″), sg[I_novel(G′)]),  azimuth ±[35°, 55°]    [Z] weight 0.01
    (5)  L_cas     = LPIPS(I, sg[CAS(I)])             (final sharpening phase)    [Z] weight 10
    (6)  L_xyz     = mean_i relu(‖μ_i^local‖ - 1)                                 [GA] weight 0.01
    (7)  L_scale   = mean_i ‖relu(exp(s_i^local) - 0.6)‖                          [GA] weight 1.0
    (8)  L_res     = Σ_attributes mean_i ‖Δg_i‖²                  residual-magnitude penalty
    (9)  L_sds / L_sym: unseen-view priors (sds.py)                               [Z] SDS weight 1.0

[Z] is the detailed write-up of VASA-3D and [GA] GaussianAvatars ``train.py`` (defaults
``metric_xyz = metric_scale = False``: μ^local in units of the parent triangle's scale k_f, s^local
the log-scale relative to k_f), as summarised in paper-notes.md §1.4 and splatting.md §4.1.

Phases: the main phase runs ``main_steps``; then ``sharpen_steps`` more steps add L_cas (VASA-3D:
200K + 20K). Weights are plain floats; ``LossConfig.weights(step)`` returns them for a (possibly
traced) step, with the CAS weight switched on only in the sharpening phase.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from vasa3d_jax.fit import cas as cas_lib
from vasa3d_jax.geometry import safe_norm
from vasa3d_jax.fit import lpips as lpips_lib
from vasa3d_jax.fit import ssim as ssim_lib


@dataclasses.dataclass(frozen=True)
class LossConfig:
    """Weights, thresholds and phases of the fitting objective (sources in the module docstring)."""

    l1: float = 0.9  # (1) 1 - λ_ssim
    dssim: float = 0.1  # (1) λ_ssim
    lpips: float = 1.0  # (2)
    adversarial: float = 0.001  # (3)
    consistency: float = 0.01  # (4)
    sharpening: float = 10.0  # (5), sharpening phase only
    position: float = 0.01  # (6) λ_xyz
    position_threshold: float = 1.0  # (6), in triangle units
    scale: float = 1.0  # (7) λ_scale
    scale_threshold: float = 0.6  # (7)
    residual: float = 1e-3  # (8); unspecified by the paper ("L_others"): a small L2 on Δg
    sds: float = 1.0  # (9) λ_sds, when a denoiser is given
    symmetry: float = 0.1  # (9) mirrored-view prior (ours; the default unseen-view prior)
    consistency_azimuth_deg: tuple[float, float] = (35.0, 55.0)  # (4) |azimuth| range of the extra view
    cas_sharpness: float = cas_lib.DEFAULT_SHARPNESS  # (5) CAS sharpness in [0, 1]
    main_steps: int = 200_000  # main phase length [Z]
    sharpen_steps: int = 20_000  # sharpening fine-tune length [Z]

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and v < 0:
                raise ValueError(f"LossConfig.{f.name}={v} must be >= 0")
        lo, hi = self.consistency_azimuth_deg
        if not 0 <= lo <= hi <= 180:
            raise ValueError(f"consistency_azimuth_deg={self.consistency_azimuth_deg} must satisfy "
                             "0 <= low <= high <= 180")

    @property
    def total_steps(self) -> int:
        return self.main_steps + self.sharpen_steps

    def in_sharpening(self, step: jax.Array | int) -> jax.Array:
        """Whether ``step`` (0-based) lies in the final sharpening phase."""
        return jnp.asarray(step) >= self.main_steps

    def weights(self, step: jax.Array | int) -> dict[str, jax.Array]:
        """The weight of every logged term at ``step``; L_cas is 0 before the sharpening phase."""
        w = {name: jnp.float32(getattr(self, name)) for name in TERMS}
        w["sharpening"] = jnp.where(self.in_sharpening(step), w["sharpening"], 0.0)
        return w


# Names of the weighted terms, as in LossConfig and in the logged metrics.
TERMS = ("l1", "dssim", "lpips", "adversarial", "consistency", "sharpening", "position", "scale",
         "residual", "sds", "symmetry")


def l1_loss(image: jax.Array, target: jax.Array) -> jax.Array:
    """Mean absolute error over all pixels and channels, scalar."""
    return jnp.mean(jnp.abs(image - target))


def reconstruction_loss(image: jax.Array, target: jax.Array, config: LossConfig = LossConfig()) -> jax.Array:
    """L_recon (1) of images (..., H, W, 3) in [0, 1], averaged over the batch: scalar."""
    return config.l1 * l1_loss(image, target) + config.dssim * jnp.mean(ssim_lib.d_ssim(image, target))


def lpips_loss(lpips_vars: dict, image: jax.Array, target: jax.Array) -> jax.Array:
    """L_lpips (2): mean LPIPS-VGG16 over the batch, scalar."""
    return jnp.mean(lpips_lib.lpips(lpips_vars, image, target))


def render_consistency_loss(lpips_vars: dict, render_final: jax.Array, render_base: jax.Array) -> jax.Array:
    """L_consist (4): LPIPS from the novel-view render of G″ to the frozen render of G′, scalar."""
    return lpips_loss(lpips_vars, render_final, jax.lax.stop_gradient(render_base))


def sharpening_loss(lpips_vars: dict, render: jax.Array,
                    sharpness: float = cas_lib.DEFAULT_SHARPNESS) -> jax.Array:
    """L_cas (5): LPIPS from a render to its own frozen CAS-sharpened copy, scalar."""
    target = jax.lax.stop_gradient(cas_lib.cas(render, sharpness))
    return lpips_loss(lpips_vars, render, target)


def _masked_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
    if mask is None:
        return jnp.mean(values)
    mask = mask.astype(values.dtype)
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def position_regulariser(local_means: jax.Array, threshold: float = 1.0,
                         mask: jax.Array | None = None) -> jax.Array:
    """L_xyz (6): local_means (N, 3) in triangle units; mask (N,) bool selects the Gaussians
    (GaussianAvatars: visible ones; here also: the live slots of a fixed capacity). Scalar."""
    return _masked_mean(jax.nn.relu(safe_norm(local_means)[..., 0] - threshold), mask)


def scale_regulariser(local_log_scales: jax.Array, threshold: float = 0.6,
                      mask: jax.Array | None = None) -> jax.Array:
    """L_scale (7): local_log_scales (N, 3), log of the scale relative to the parent triangle. Scalar."""
    return _masked_mean(safe_norm(jax.nn.relu(jnp.exp(local_log_scales) - threshold))[..., 0], mask)


def residual_penalty(residuals, mask: jax.Array | None = None) -> jax.Array:
    """L_res (8): Σ over the attributes (pytree leaves, each (N, ...)) of mean_i ‖Δg_i‖². Scalar."""
    leaves = jax.tree_util.tree_leaves(residuals)
    if not leaves:
        raise ValueError("residual_penalty needs at least one residual array")
    return sum(_masked_mean(jnp.sum(leaf.reshape(leaf.shape[0], -1) ** 2, axis=-1), mask)
               for leaf in leaves)


def weighted_total(terms: dict[str, jax.Array], weights: dict[str, jax.Array]) -> jax.Array:
    """Σ_k weights[k] · terms[k] over the terms present (each must have a weight). Scalar."""
    missing = sorted(set(terms) - set(weights))
    if missing:
        raise ValueError(f"no weight for loss terms {missing}; known: {sorted(weights)}")
    return sum(weights[k] * v for k, v in terms.items())


def psnr(image: jax.Array, target: jax.Array) -> jax.Array:
    """Peak signal-to-noise ratio in dB of images in [0, 1], (..., H, W, C) -> (...)."""
    mse = jnp.mean((image - target) ** 2, axis=(-3, -2, -1))
    return -10.0 * jnp.log10(jnp.maximum(mse, 1e-12))
