"""Differentiable tile compositing of splatted Gaussians: a pure-JAX reference (the CPU path) and
Pallas kernels with the same contract, bound into one ``custom_vjp`` by ``rasterize``."""

from vasa3d_jax.kernels.splat.api import rasterize
from vasa3d_jax.kernels.splat.config import DEFAULT_CONFIG, SplatConfig, default_config
from vasa3d_jax.kernels.splat.reference import rasterize_bwd_ref, rasterize_fwd_ref

__all__ = ["rasterize", "rasterize_fwd_ref", "rasterize_bwd_ref", "SplatConfig", "DEFAULT_CONFIG", "default_config"]
