"""``rasterize``: differentiable tile compositing with an ``implementation=`` switch.

The forward and backward halves live in ``xla.py`` (pure JAX, the tuned XLA path) and in
``pallas_fwd.py`` / ``pallas_bwd.py`` (Pallas; ``interpret=True`` off GPU). They are bound here into
one ``jax.custom_vjp`` (``_fwd`` saves the inputs, T_final and n_contrib; ``_bwd`` runs the
hand-written back-to-front pass), so autodiff never traces through the compositing loop.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from vasa3d_jax.kernels.splat import xla
from vasa3d_jax.kernels.splat.config import SplatConfig, default_config

IMPLEMENTATIONS = ("xla", "pallas")


def _on_gpu() -> bool:
    return jax.default_backend() == "gpu"


def _pallas_backend() -> str:
    """Mosaic GPU on Hopper and newer (compute capability >= 9), Triton below (Ampere/Ada)."""
    if not _on_gpu():
        return "triton"
    capability = getattr(jax.devices("gpu")[0], "compute_capability", "0")
    return "mosaic_gpu" if float(capability) >= 9.0 else "triton"


def _halves(implementation: str):
    """(forward, backward) functions with the reference signatures for ``implementation``."""
    if implementation == "xla":
        return xla.rasterize_fwd_xla, xla.rasterize_bwd_xla
    try:
        from vasa3d_jax.kernels.splat import pallas_bwd, pallas_fwd
    except ImportError as err:
        raise ImportError(f"implementation='pallas' needs kernels/splat/pallas_fwd.py and pallas_bwd.py: {err}") from err
    kw = dict(interpret=not _on_gpu(), backend=_pallas_backend())
    return (functools.partial(pallas_fwd.rasterize_fwd_pallas, **kw),
            functools.partial(pallas_bwd.rasterize_bwd_pallas, **kw))


@functools.lru_cache(maxsize=None)
def _make_rasterize(width: int, height: int, tile_size: int, implementation: str, config: SplatConfig,
                    with_n_contrib: bool):
    fwd_fn, bwd_fn = _halves(implementation)
    static = dict(width=width, height=height, tile_size=tile_size)
    primal = {}
    if implementation == "xla":
        static["config"] = config
        primal["with_n_contrib"] = with_n_contrib

    @jax.custom_vjp
    def rasterize_vjp(means2d, conics, opacities, colors, background, isect_gids, tile_offsets):
        out, t_final, n_contrib = fwd_fn(means2d, conics, opacities, colors, background, isect_gids,
                                         tile_offsets, **static, **primal)
        return out, 1.0 - t_final, n_contrib

    def _fwd(means2d, conics, opacities, colors, background, isect_gids, tile_offsets):
        out, t_final, n_contrib = fwd_fn(means2d, conics, opacities, colors, background, isect_gids,
                                         tile_offsets, **static)
        res = (means2d, conics, opacities, colors, background, isect_gids, tile_offsets, t_final, n_contrib)
        return (out, 1.0 - t_final, n_contrib), res

    def _bwd(res, cotangents):
        v_out, v_alpha, _ = cotangents
        grads = bwd_fn(*res, v_out, v_alpha, **static)
        return tuple(grads) + (None, None)

    rasterize_vjp.defvjp(_fwd, _bwd)
    return rasterize_vjp


def rasterize(means2d, conics, opacities, colors, background, isect_gids, tile_offsets, *,
              width: int, height: int, tile_size: int | None = None, implementation: str = "xla",
              config: SplatConfig | None = None, with_n_contrib: bool = True):
    """Composite sorted Gaussians into an image (contract: ``xla.py``), differentiably.

    Returns out (H, W, D) = C + T bg, alpha (H, W) = 1 - T_final, n_contrib (H, W) int32. Gradients
    flow to means2d, conics, opacities, colors and background through the hand-written backward.
    ``with_n_contrib=False`` lets a call that is not differentiated skip n_contrib (then zeros on
    the XLA path; a differentiated call always computes it for its backward).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"{implementation=} must be one of {IMPLEMENTATIONS}")
    config = config or default_config(implementation)
    tile_size = tile_size or config.tile_size
    if tile_size != config.tile_size:
        config = dataclasses.replace(config, tile_size=tile_size)
    xla.check_inputs(means2d, conics, opacities, colors, background, isect_gids, tile_offsets,
                           width=width, height=height, tile_size=tile_size)
    fn = _make_rasterize(width, height, tile_size, implementation, config, with_n_contrib)
    return fn(means2d, conics, opacities, colors, jnp.asarray(background, colors.dtype),
              isect_gids, tile_offsets)
