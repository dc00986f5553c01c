"""``render_features`` and ``render``: Gaussians + camera -> composited features, alpha and expected
depth, with the semantics of gsplat 1.5.3 ``rasterization``.

The pipeline, per (Gaussian set, camera) pair, for per-Gaussian features f_i of any width D:

    (1) projection, culling and radii           ``projection.project`` (EWA splatting, eps2d blur)
    (2) tile binning, static capacity           ``binning.bin_gaussians``
    (3) front-to-back compositing of [f, z]     ``vasa3d_jax.kernels.splat.rasterize`` (custom VJP):
            F = sum_i w_i f_i + T bg,   w_i = alpha_i prod_{j<i} (1 - alpha_j),   A = sum_i w_i = 1 - T
    (4) depth = sum_i w_i z_i / max(A, 1e-10)    (gsplat render_mode "ED"; z_i the camera z)

``render_features`` is (1)-(4) for any features (a z-buffer, photo coordinates, confidences...;
F / A is the weight-averaged feature of the surface seen at a pixel). ``render`` is
``render_features`` of the colours:

    (5) f_i = c_i (RGB as given), or max(SH(mu_i - camera centre) + 0.5, 0)   (``sh.sh_to_color``)

Stages (1), (2) and (5) are plain JAX and differentiate by autodiff (as gsplat's torch path); stage
(3) has a hand-written backward for any D. Leading batch dimensions of the Gaussians, the features
and the camera broadcast against each other (numpy rules) and are vmapped, so many cameras and many
Gaussian sets render in one call. ``isect_need`` is stage (1) and the count of stage (2) alone, the
need that ``capacity.py`` sizes renders by.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.kernels.splat import rasterize
from vasa3d_jax.kernels.splat.config import SplatConfig, default_config
from vasa3d_jax.render import binning, projection, sh
from vasa3d_jax.render.types import Camera, FeatureOutput, Gaussians, RenderOutput

BACKENDS = ("auto", "xla", "pallas")
DEPTH_ALPHA_MIN = 1e-10  # gsplat 1.5.3 render_mode "ED": depth / clamp_min(alpha, 1e-10)


def _check_geometry(gaussians: Gaussians, camera: Camera, backend: str):
    if backend not in BACKENDS:
        raise ValueError(f"{backend=} must be one of {BACKENDS}")
    n = gaussians.num
    lead = gaussians.means.shape[:-2]
    expect = dict(means=(n, 3), quats=(n, 4), scales=(n, 3), opacities=(n,))
    for name, tail in expect.items():
        shape = getattr(gaussians, name).shape
        if shape[len(shape) - len(tail):] != tail or shape[:len(shape) - len(tail)] != lead:
            raise ValueError(f"Gaussians.{name} must be batch {lead} + {tail}; got {shape}")
    if camera.viewmat.shape[-2:] != (4, 4) or camera.K.shape[-2:] != (3, 3):
        raise ValueError(f"Camera needs viewmat (..., 4, 4) and K (..., 3, 3); got {camera.viewmat.shape}, {camera.K.shape}")
    if camera.viewmat.shape[:-2] != camera.K.shape[:-2]:
        raise ValueError(f"Camera viewmat and K batch dims differ: {camera.viewmat.shape[:-2]} vs {camera.K.shape[:-2]}")


def _check_colors(gaussians: Gaussians):
    lead, n = gaussians.means.shape[:-2], gaussians.num
    cshape = () if gaussians.colors is None else gaussians.colors.shape
    if cshape[:len(lead) + 1] != lead + (n,) or cshape[-1:] != (3,) or len(cshape) not in (len(lead) + 2, len(lead) + 3):
        raise ValueError(f"Gaussians.colors must be {lead + (n, 3)} (RGB) or {lead + (n, 'K', 3)} (SH); got {cshape}"
                         " (render_features composites other per-Gaussian features)")
    gaussians.sh_degree  # validates K = (d+1)^2, d <= 3


def _check_features(features: jax.Array, background: jax.Array, n: int):
    if features.ndim < 2 or features.shape[-2] != n:
        raise ValueError(f"features must be (..., N, D) with N = {n} Gaussians; got {features.shape}")
    if background.shape[-1:] != features.shape[-1:]:
        raise ValueError(f"background must be (..., D) with D = {features.shape[-1]} feature channels; "
                         f"got {background.shape}")


def _project_one(g: Gaussians, viewmat, K, camera: Camera, antialiased: bool):
    return projection.project(g.means, g.quats, g.scales, g.opacities, viewmat, K, width=camera.width,
                              height=camera.height, near=camera.near, far=camera.far, antialiased=antialiased)


def _render_one(g: Gaussians, feats, viewmat, K, background, offset, *, camera: Camera, antialiased: bool,
                capacity: int, implementation: str, config: SplatConfig) -> FeatureOutput:
    w, h, d = camera.width, camera.height, feats.shape[-1]
    p = _project_one(g, viewmat, K, camera, antialiased)
    feats = jnp.concatenate([feats, p.depths[:, None]], axis=-1)  # (3): z rides as channel D
    bg = jnp.concatenate([background, jnp.zeros((1,), background.dtype)])
    means2d = p.means2d + offset
    bins = binning.bin_gaussians(means2d, p.radii, p.depths, p.conics, p.opacities, width=w, height=h,
                                 tile_size=config.tile_size, capacity=capacity)
    out, alpha, _ = rasterize(means2d, p.conics, p.opacities, feats, bg, bins.isect_gids, bins.tile_offsets,
                              width=w, height=h, tile_size=config.tile_size, implementation=implementation,
                              config=config, with_n_contrib=False)
    return FeatureOutput(
        features=out[..., :d],
        alpha=alpha,
        depth=out[..., d] / jnp.maximum(alpha, DEPTH_ALPHA_MIN),  # (4)
        radii=p.radii,
        means2d=means2d,
        num_visible=jnp.sum(p.visible).astype(jnp.int32),
        num_isects=bins.num_isects,
        isect_overflow=bins.isect_overflow,
        max_tile_count=bins.max_tile_count,
    )


def _broadcast(batch: tuple, *inputs):
    """Each (array, its own batch dims) broadcast to ``batch`` and flattened to (B, ...)."""
    size = math.prod(batch)

    def flat(x, lead):
        tail = x.shape[len(lead):]
        return jnp.broadcast_to(x, batch + tail).reshape((size,) + tail)

    return [jax.tree.map(lambda x, lead=lead: flat(x, lead), x) for x, lead in inputs]


def _lead(x, tail: int) -> tuple:
    return x.shape[:x.ndim - tail]


def _implementation(backend: str) -> str:
    # "auto" is the tested XLA path on every platform until a GPU run passes the GPU-marked tests;
    # the Pallas kernels are one argument away (backend="pallas").
    return "xla" if backend == "auto" else backend


def _geometry(gaussians: Gaussians) -> Gaussians:
    return gaussians.replace(colors=None)


def render_features(
    gaussians: Gaussians,
    features: jax.Array,
    camera: Camera,
    background: jax.Array | None = None,
    backend: str = "auto",
    *,
    antialiased: bool = False,
    capacity: int | None = None,
    config: SplatConfig | None = None,
    means2d_offset: jax.Array | None = None,
) -> FeatureOutput:
    """Equations (1)-(4): per-Gaussian ``features`` (..., N, D), any D >= 0, composited front to back.

    gaussians: the geometry (means, quats, scales, opacities; ``colors`` is not used and may be
    None), (..., N, ...); camera: ``Camera`` (..., 4, 4)/(..., 3, 3); background (..., D), default
    zeros; all leading dims broadcast. Returns a ``FeatureOutput``: features (..., H, W, D), alpha,
    depth and the binning diagnostics. Differentiable with respect to the features, the geometry,
    the background and ``means2d_offset``. backend, antialiased, capacity, config, means2d_offset:
    as ``render``.
    """
    dtype = gaussians.means.dtype
    _check_geometry(gaussians, camera, backend)
    features = jnp.asarray(features, dtype)
    n = gaussians.num
    background = (jnp.zeros(features.shape[-1:], dtype) if background is None
                  else jnp.asarray(background, dtype))
    _check_features(features, background, n)
    implementation = _implementation(backend)
    config = config or default_config(implementation)
    capacity = capacity or config.default_capacity(n)
    offset = jnp.zeros((n, 2), dtype) if means2d_offset is None else jnp.asarray(means2d_offset, dtype)
    one = functools.partial(_render_one, camera=camera, antialiased=antialiased, capacity=capacity,
                            implementation=implementation, config=config)
    g = _geometry(gaussians)
    parts = [(g, _lead(g.means, 2)), (features, _lead(features, 2)), (camera.viewmat, _lead(camera.viewmat, 2)),
             (camera.K, _lead(camera.K, 2)), (background, _lead(background, 1)), (offset, _lead(offset, 2))]
    batch = tuple(np.broadcast_shapes(*(lead for _, lead in parts)))
    flat = _broadcast(batch, *parts)
    if not batch:  # no batch dims: skip vmap (its batched while loops cost compile time)
        return one(*jax.tree.map(lambda x: x[0], flat))
    out = jax.vmap(one)(*flat)
    return jax.tree.map(lambda x: x.reshape(batch + x.shape[1:]), out)


def _colors(gaussians: Gaussians, camera: Camera) -> jax.Array:
    """Equation (5): (..., N, 3) colours; SH is evaluated from each camera (batch dims broadcast)."""
    if gaussians.sh_degree is None:
        return gaussians.colors
    parts = [(gaussians.colors, _lead(gaussians.colors, 3)), (gaussians.means, _lead(gaussians.means, 2)),
             (camera.viewmat, _lead(camera.viewmat, 2))]
    batch = tuple(np.broadcast_shapes(*(lead for _, lead in parts)))
    coeffs, means, viewmat = _broadcast(batch, *parts)
    rgb = jax.vmap(lambda c, m, v: sh.sh_to_color(c, m, projection.camera_center(v)))(coeffs, means, viewmat)
    return rgb.reshape(batch + rgb.shape[1:])


def render(
    gaussians: Gaussians,
    camera: Camera,
    background: jax.Array | None = None,
    backend: str = "auto",
    *,
    antialiased: bool = False,
    capacity: int | None = None,
    config: SplatConfig | None = None,
    means2d_offset: jax.Array | None = None,
) -> RenderOutput:
    """Render Gaussians from a camera, gsplat 1.5.3 ``rasterization()`` semantics (defaults):
    ``render_features`` of the colours (5).

    gaussians: ``Gaussians`` (..., N, ...); camera: ``Camera`` (..., 4, 4)/(..., 3, 3); background
    (..., 3) (None: black; not an array default, which would start JAX on import and break
    ``jax.distributed.initialize`` after it); all leading dims broadcast. backend: "xla" (pure JAX), "pallas" (Pallas kernels,
    interpret mode off GPU) or "auto" (XLA on every platform, the tested path). antialiased: gsplat's
    rasterize_mode="antialiased" (opacity times the blur compensation). capacity: static number of
    (Gaussian, binning tile) pairs, binning tiles being ``binning.COARSEN`` x the compositing tile
    (default ``config.default_capacity(N)``; ``capacity.py`` holds the policy that sizes it from
    ``required_capacity``; ``isect_overflow`` > 0 in the output says it was too small). means2d_offset:
    optional (..., N, 2) added to the projected centres; pass zeros and differentiate with respect to
    it to get the screen-space gradient that densification uses (gsplat's ``meta["means2d"].grad``).
    config: tiling and chunking (default ``default_config(implementation)``: 8-pixel tiles for XLA,
    16 for Pallas; the image does not depend on it, the capacity a scene needs does).
    """
    _check_geometry(gaussians, camera, backend)
    _check_colors(gaussians)
    out = render_features(gaussians, _colors(gaussians, camera), camera, background, backend,
                          antialiased=antialiased, capacity=capacity, config=config,
                          means2d_offset=means2d_offset)
    fields = {f.name: getattr(out, f.name) for f in dataclasses.fields(out) if f.name != "features"}
    return RenderOutput(rgb=out.features, **fields)


def isect_need(gaussians: Gaussians, camera: Camera, *, antialiased: bool = False, backend: str = "auto",
               config: SplatConfig | None = None) -> jax.Array:
    """(Gaussian, binning tile) pairs each image needs (the ``num_isects`` a render would report),
    from stage (1) alone: (...) int32 over the broadcast batch dims. Jittable."""
    config = config or default_config(_implementation(backend))
    g = _geometry(gaussians)
    parts = [(g, _lead(g.means, 2)), (camera.viewmat, _lead(camera.viewmat, 2)), (camera.K, _lead(camera.K, 2))]
    batch = tuple(np.broadcast_shapes(*(lead for _, lead in parts)))

    def count(g_, v_, k_):
        p = _project_one(g_, v_, k_, camera, antialiased)
        c = binning.count_isects(p.means2d, p.radii, width=camera.width, height=camera.height,
                                 tile_size=config.tile_size)
        return jnp.sum(c).astype(jnp.int32)

    return jax.vmap(count)(*_broadcast(batch, *parts)).reshape(batch)
