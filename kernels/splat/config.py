"""Tiling and chunking parameters of the splatting compositing stage.

Defaults: 16x16-pixel tiles for the Pallas kernels (gsplat 1.5.3 ``rasterization(tile_size=16)``;
256 pixels, a power of two as Triton needs) and 8x8 for the XLA path (every (Gaussian, tile) pair
evaluates all pixels of the tile, so smaller tiles waste less work around small splats: 2x faster
forward and backward on the 5k_256 benchmark scene; the image does not depend on the tile size,
``reference/splatting.md`` 1.4; 4- and 16-pixel tiles were slower on the 20k_512 scene); rounds of
16 steps, 8 entries per loop iteration forward and 2 backward, and windows of up to 256 tiles for the XLA path
(``xla.py`` says what they mean; tuned on ``experiments/bench_render.py``'s scenes).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SplatConfig:
    """Static parameters of the compositing stage (hashable; safe as a jit static argument).

    tile_size:  tile edge in pixels (gsplat default 16; the XLA path's default is 8, see above)
    steps:      list entries each tile of the window advances per round, between refills (XLA path)
    unroll:     entries per loop iteration of the forward (XLA path; divides ``steps``): fewer, longer
                iterations save XLA:CPU's per-op dispatch, which dominates small tiles' steps
    bwd_unroll: the same for the backward (whose longer body runs slower unrolled further)
    window:     tiles composited side by side (XLA path): slots refilled as tiles finish
    isects_per_gaussian: default intersection capacity per Gaussian when ``render`` gets no
                capacity (a Gaussian of radius r pixels touches about (2r / b + 1)^2 binning tiles of
                b = 2 tile_size pixels; 16 covers radii up to ~3 b / 2, head avatars at 512^2; size larger scenes with
                ``vasa3d_jax.render.required_capacity``)
    """

    tile_size: int = 16
    steps: int = 16
    unroll: int = 8
    bwd_unroll: int = 2
    window: int = 256
    isects_per_gaussian: int = 16

    def __post_init__(self):
        for name in ("tile_size", "steps", "unroll", "bwd_unroll", "window", "isects_per_gaussian"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SplatConfig.{name}={value!r} must be a positive int")
        for name in ("unroll", "bwd_unroll"):
            if self.steps % getattr(self, name):
                raise ValueError(f"SplatConfig.{name}={getattr(self, name)} must divide steps={self.steps}")

    def default_capacity(self, num_gaussians: int) -> int:
        """Static intersection capacity used when ``render`` is given none."""
        return max(self.isects_per_gaussian * num_gaussians, 1024)


DEFAULT_CONFIG = SplatConfig()
DEFAULT_CONFIGS = {"xla": SplatConfig(tile_size=8), "pallas": DEFAULT_CONFIG}


def default_config(implementation: str) -> SplatConfig:
    """The documented default for ``implementation`` ("xla" or "pallas")."""
    if implementation not in DEFAULT_CONFIGS:
        raise ValueError(f"{implementation=} must be one of {tuple(DEFAULT_CONFIGS)}")
    return DEFAULT_CONFIGS[implementation]
