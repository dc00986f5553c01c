"""Differentiable tile compositing of splatted Gaussians: the tuned pure-JAX path (``xla.py``, the default) and
Pallas kernels with the same contract (any number of channels), bound into one ``custom_vjp`` by
``rasterize``; ``reference.py`` is the obviously correct oracle they are tested against (dense
compositing, ``composite_ref``). Only ``vasa3d_jax.render`` calls them."""

from vasa3d_jax.kernels.splat.api import rasterize
from vasa3d_jax.kernels.splat.config import DEFAULT_CONFIG, SplatConfig, default_config
from vasa3d_jax.kernels.splat.xla import rasterize_bwd_xla, rasterize_fwd_xla

__all__ = ["rasterize", "rasterize_fwd_xla", "rasterize_bwd_xla", "SplatConfig", "DEFAULT_CONFIG", "default_config"]
