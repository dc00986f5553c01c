"""``render``: Gaussians + camera -> image, alpha and expected depth (gsplat 1.5.3 ``rasterization``).

The pipeline, per (Gaussian set, camera) pair:

    (1) projection, culling and radii          ``projection.project`` (EWA splatting, eps2d blur)
    (2) colours: RGB as given, or SH           ``sh.sh_to_color``: max(SH(mu - camera centre) + 0.5, 0)
    (3) tile binning, static capacity          ``binning.bin_gaussians``
    (4) compositing of [colour, camera z]      ``vasa3d_jax.kernels.splat.rasterize`` (custom VJP)
    (5) depth = sum_i w_i z_i / max(alpha, 1e-10)   (gsplat render_mode "ED")

Stages (1)-(3) are plain JAX and differentiate by autodiff (as gsplat's torch path); stage (4) has
a hand-written backward. Leading batch dimensions of the Gaussians and of the camera broadcast
against each other (numpy rules) and are vmapped, so many cameras and many Gaussian sets render in
one call.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.kernels.splat import rasterize
from vasa3d_jax.kernels.splat.config import SplatConfig, default_config
from vasa3d_jax.render import binning, projection, sh
from vasa3d_jax.render.types import Camera, Gaussians, RenderOutput

BACKENDS = ("auto", "xla", "pallas")
DEPTH_ALPHA_MIN = 1e-10  # gsplat 1.5.3 render_mode "ED": depth / clamp_min(alpha, 1e-10)


def _check(gaussians: Gaussians, camera: Camera, background: jax.Array, backend: str):
    if backend not in BACKENDS:
        raise ValueError(f"{backend=} must be one of {BACKENDS}")
    n = gaussians.num
    lead = gaussians.means.shape[:-2]
    expect = dict(means=(n, 3), quats=(n, 4), scales=(n, 3), opacities=(n,))
    for name, tail in expect.items():
        shape = getattr(gaussians, name).shape
        if shape[len(shape) - len(tail):] != tail or shape[:len(shape) - len(tail)] != lead:
            raise ValueError(f"Gaussians.{name} must be batch {lead} + {tail}; got {shape}")
    cshape = gaussians.colors.shape
    if cshape[:len(lead) + 1] != lead + (n,) or cshape[-1] != 3 or len(cshape) not in (len(lead) + 2, len(lead) + 3):
        raise ValueError(f"Gaussians.colors must be {lead + (n, 3)} (RGB) or {lead + (n, 'K', 3)} (SH); got {cshape}")
    gaussians.sh_degree  # validates K = (d+1)^2, d <= 3
    if camera.viewmat.shape[-2:] != (4, 4) or camera.K.shape[-2:] != (3, 3):
        raise ValueError(f"Camera needs viewmat (..., 4, 4) and K (..., 3, 3); got {camera.viewmat.shape}, {camera.K.shape}")
    if camera.viewmat.shape[:-2] != camera.K.shape[:-2]:
        raise ValueError(f"Camera viewmat and K batch dims differ: {camera.viewmat.shape[:-2]} vs {camera.K.shape[:-2]}")
    if background.shape[-1:] != (3,):
        raise ValueError(f"background must be (..., 3); got {background.shape}")


def _project_one(g: Gaussians, viewmat, K, camera: Camera, antialiased: bool):
    return projection.project(g.means, g.quats, g.scales, g.opacities, viewmat, K, width=camera.width,
                              height=camera.height, near=camera.near, far=camera.far, antialiased=antialiased)


def _render_one(g: Gaussians, viewmat, K, background, offset, *, camera: Camera, antialiased: bool,
                capacity: int, implementation: str, config: SplatConfig) -> RenderOutput:
    w, h = camera.width, camera.height
    p = _project_one(g, viewmat, K, camera, antialiased)
    colors = g.colors if g.colors.ndim == 2 else sh.sh_to_color(g.colors, g.means, projection.camera_center(viewmat))
    feats = jnp.concatenate([colors, p.depths[:, None]], axis=-1)
    bg = jnp.concatenate([background, jnp.zeros((1,), background.dtype)])
    means2d = p.means2d + offset
    bins = binning.bin_gaussians(means2d, p.radii, p.depths, p.conics, p.opacities, width=w, height=h,
                                 tile_size=config.tile_size, capacity=capacity)
    out, alpha, _ = rasterize(means2d, p.conics, p.opacities, feats, bg, bins.isect_gids, bins.tile_offsets,
                              width=w, height=h, tile_size=config.tile_size, implementation=implementation,
                              config=config, with_n_contrib=False)
    return RenderOutput(
        rgb=out[..., :3],
        alpha=alpha,
        depth=out[..., 3] / jnp.maximum(alpha, DEPTH_ALPHA_MIN),
        radii=p.radii,
        means2d=means2d,
        num_visible=jnp.sum(p.visible).astype(jnp.int32),
        num_isects=bins.num_isects,
        isect_overflow=bins.isect_overflow,
        max_tile_count=bins.max_tile_count,
    )


def _broadcast_batch(gaussians: Gaussians, camera: Camera, background, offset):
    """Broadcast the leading dims of all inputs; returns flattened (B, ...) inputs and the batch shape."""
    glead = gaussians.means.shape[:-2]
    clead = camera.viewmat.shape[:-2]
    blead = background.shape[:-1]
    olead = offset.shape[:-2]
    batch = np.broadcast_shapes(glead, clead, blead, olead)
    size = math.prod(batch)

    def flat(x, lead):
        tail = x.shape[len(lead):]
        return jnp.broadcast_to(x, batch + tail).reshape((size,) + tail)

    g = jax.tree.map(lambda x: flat(x, glead), gaussians)
    return g, flat(camera.viewmat, clead), flat(camera.K, clead), flat(background, blead), flat(offset, olead), batch


def _implementation(backend: str) -> str:
    # "auto" is the tested XLA path on every platform until a GPU run passes the GPU-marked tests;
    # the Pallas kernels are one argument away (backend="pallas").
    return "xla" if backend == "auto" else backend


def render(
    gaussians: Gaussians,
    camera: Camera,
    background: jax.Array = jnp.zeros(3),
    backend: str = "auto",
    *,
    antialiased: bool = False,
    capacity: int | None = None,
    config: SplatConfig | None = None,
    means2d_offset: jax.Array | None = None,
) -> RenderOutput:
    """Render Gaussians from a camera, gsplat 1.5.3 ``rasterization()`` semantics (defaults).

    gaussians: ``Gaussians`` (..., N, ...); camera: ``Camera`` (..., 4, 4)/(..., 3, 3); background
    (..., 3); all leading dims broadcast. backend: "xla" (pure JAX), "pallas" (Pallas kernels,
    interpret mode off GPU) or "auto" (XLA on every platform, the tested path). antialiased: gsplat's
    rasterize_mode="antialiased" (opacity times the blur compensation). capacity: static number of
    (Gaussian, binning tile) pairs, binning tiles being ``binning.COARSEN`` x the compositing tile (default ``config.default_capacity(N)``; ``required_capacity`` measures a
    scene; ``isect_overflow`` > 0 in the output says it was too small). means2d_offset: optional
    (..., N, 2) added to the projected centres; pass zeros and differentiate with respect to it to
    get the screen-space gradient that densification uses (gsplat's ``meta["means2d"].grad``).
    config: tiling and chunking (default ``default_config(implementation)``: 8-pixel tiles for XLA,
    16 for Pallas; the image does not depend on it, the capacity a scene needs does).
    """
    background = jnp.asarray(background, gaussians.means.dtype)
    _check(gaussians, camera, background, backend)
    implementation = _implementation(backend)
    config = config or default_config(implementation)
    n = gaussians.num
    capacity = capacity or config.default_capacity(n)
    if means2d_offset is None:
        means2d_offset = jnp.zeros((n, 2), gaussians.means.dtype)
    one = functools.partial(_render_one, camera=camera, antialiased=antialiased, capacity=capacity,
                            implementation=implementation, config=config)
    g, viewmat, K, bg, off, batch = _broadcast_batch(gaussians, camera, background, means2d_offset)
    if not batch:  # no batch dims: skip vmap (its batched while loops cost compile time)
        return one(jax.tree.map(lambda x: x[0], g), viewmat[0], K[0], bg[0], off[0])
    out = jax.vmap(one)(g, viewmat, K, bg, off)
    return jax.tree.map(lambda x: x.reshape(batch + x.shape[1:]), out)


def required_capacity(gaussians: Gaussians, camera: Camera, *, antialiased: bool = False, backend: str = "auto",
                      config: SplatConfig | None = None) -> int:
    """Intersection capacity a scene needs (the largest over its batch), from the cheap projection pass.

    Runs on concrete arrays (not under jit); pass the result, maybe with a margin for motion, as
    ``render(..., capacity=...)`` with the same ``backend`` and ``config`` (they set the tile size).
    """
    config = config or default_config(_implementation(backend))
    bg = jnp.zeros(3, gaussians.means.dtype)
    off = jnp.zeros((gaussians.num, 2), gaussians.means.dtype)
    g, viewmat, K, _, _, _ = _broadcast_batch(gaussians, camera, bg, off)

    @jax.jit
    @jax.vmap
    def count(g_, v_, k_):
        p = _project_one(g_, v_, k_, camera, antialiased)
        c = binning.count_isects(p.means2d, p.radii, width=camera.width, height=camera.height,
                                 tile_size=config.tile_size)
        return jnp.sum(c)

    return int(jnp.max(count(g, viewmat, K)))
