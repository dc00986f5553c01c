"""Tiling and chunking parameters of the splatting compositing stage.

Defaults: 16x16-pixel tiles for the Pallas kernels (gsplat 1.5.3 ``rasterization(tile_size=16)``;
256 pixels, a power of two as Triton needs) and 8x8 for the XLA path (every (Gaussian, tile) pair
evaluates all pixels of the tile, so smaller tiles waste less work around small splats: 2x faster
forward and backward on the 5k_256 benchmark scene; the image does not depend on the tile size,
``reference/splatting.md`` 1.4); chunks of 16 Gaussians and batches of 32 tiles for the XLA path, the fastest
of chunk in {8, 16, 32, 64} x batch in {8, 32, 64, 128, 256} on the 5k_256 scene of
``experiments/bench_render.py`` on the 2-core CPU (longer chunks pad short tile lists and composite
past the early stop; larger batches pad more; smaller ones pay more loop overhead).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SplatConfig:
    """Static parameters of the compositing stage (hashable; safe as a jit static argument).

    tile_size:  tile edge in pixels (gsplat default 16; the XLA path's default is 8, see above)
    chunk:      Gaussians of one tile list composited together per step (XLA path)
    tile_batch: tiles processed together per step (XLA path)
    isects_per_gaussian: default intersection capacity per Gaussian when ``render`` gets no
                capacity (a Gaussian of radius r pixels touches about (2r / tile_size + 1)^2 tiles;
                16 covers radii up to ~16 px, head avatars at 512^2; size larger scenes with
                ``vasa3d_jax.render.required_capacity``)
    """

    tile_size: int = 16
    chunk: int = 16
    tile_batch: int = 32
    isects_per_gaussian: int = 16

    def __post_init__(self):
        for name in ("tile_size", "chunk", "tile_batch", "isects_per_gaussian"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SplatConfig.{name}={value!r} must be a positive int")

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
