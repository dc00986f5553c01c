"""Configuration of per-identity fitting: optimiser, densification, losses, logging.

Defaults are the paper's where it gives them (paper-notes.md §1.4-1.5, [Z]) and GaussianAvatars'
(``arguments/__init__.py``, splatting.md §4.1, [GA]) for what VASA-3D leaves open; anything else is
marked as ours. Experiments override fields with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses

from vasa3d_jax.avatar import AvatarConfig
from vasa3d_jax.fit.losses import LossConfig
from vasa3d_jax.fit.sds import SdsConfig


@dataclasses.dataclass(frozen=True)
class LearningRates:
    """Adam learning rates per parameter group (``optax.partition``)."""

    position: float = 5e-3  # [GA] position_lr_init (triangle-local units)
    position_final: float = 5e-5  # [GA] position_lr_final, exponential decay over the run
    color: float = 2.5e-3  # [GA] feature_lr
    opacity: float = 0.05  # [GA] opacity_lr
    scale: float = 0.017  # [GA] scaling_lr
    rotation: float = 1e-3  # [GA] rotation_lr
    base_mlp: float = 1e-4  # M_e, M_p: paper-notes §1.5 suggestion (1e-4 .. 5e-4)
    residual_mlp: float = 5e-4  # D_e, D_p: same suggestion
    shape: float = 1e-4  # identity coefficients beta (ours; [GA] tunes FLAME expression at 1e-3)
    discriminator: float = 2e-4  # pix2pixHD: Adam lr 2e-4
    discriminator_beta1: float = 0.5  # pix2pixHD: Adam beta1 0.5
    gaussian_eps: float = 1e-15  # [GA] Adam eps of the Gaussian attributes


@dataclasses.dataclass(frozen=True)
class DensifySchedule:
    """When densify/prune runs (paper [Z], equal to [GA]'s defaults) and its thresholds ([GA])."""

    start: int = 10_000  # first densification step [Z]
    every: int = 2_000  # interval [Z]
    until: int = 100_000  # last step [Z]
    max_gaussians: int = 200_000  # stop densifying above this count [Z]
    grad_threshold: float = 2e-4  # [GA] densify_grad_threshold
    percent_dense: float = 0.01  # [GA]
    min_opacity: float = 0.005  # [GA]
    opacity_reset_every: int = 60_000  # [GA] opacity_reset_interval (0 = never)
    extent_factor: float = 1.1  # scene extent E = 1.1 x camera-to-head distance (3DGS's 1.1 margin)


@dataclasses.dataclass(frozen=True)
class FitConfig:
    """Everything ``trainer.fit`` needs besides the data. Steps = losses.main_steps + sharpen_steps."""

    batch_size: int = 4  # frames per step, a multiple of the device count [Z]
    losses: LossConfig = LossConfig()
    lr: LearningRates = LearningRates()
    densify: DensifySchedule = DensifySchedule()
    sds: SdsConfig = SdsConfig()  # settings of score distillation (used when a denoiser is given)
    symmetry_every: int = 10  # mirrored-view prior every this many steps (ours; 0 = off)
    avatar: AvatarConfig = AvatarConfig()
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)  # render background (white)
    disc_features: int = 64  # first-layer channels of each patch discriminator (pix2pixHD ndf)
    init_colors: str = "regions"  # fresh avatars: "regions" (avatar.region_colors) or "random"
    seed: int = 0
    log_every: int = 50  # metrics line (JSON) every this many steps
    save_every: int = 1_000  # checkpoint every this many steps (and on SIGINT/SIGTERM, and at the end)
    preview_every: int = 1_000  # preview PNG every this many steps (MP4 of all previews at the end)

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError(f"batch_size={self.batch_size} must be >= 1")
        if self.init_colors not in ("regions", "random"):
            raise ValueError(f"init_colors={self.init_colors!r} must be 'regions' or 'random'")
        for name in ("log_every", "save_every", "preview_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")

    @property
    def steps(self) -> int:
        return self.losses.total_steps
