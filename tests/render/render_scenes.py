"""Scene generators shared by the renderer tests and the benchmark (explicit keys, no hidden randomness)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vasa3d_jax.camera import intrinsics, look_at
from vasa3d_jax.render import Camera, Gaussians


def random_quats(key, n):
    q = jax.random.normal(key, (n, 4))
    return q / jnp.linalg.norm(q, axis=-1, keepdims=True)


def random_scene(key, n, *, sh_degree=None, spread=0.5, scale_range=(0.02, 0.12), opacity_range=(0.05, 1.0)):
    """N Gaussians in a cube of half-width ``spread`` around the origin, RGB or SH colours."""
    k = jax.random.split(key, 5)
    means = jax.random.uniform(k[0], (n, 3), minval=-spread, maxval=spread)
    log_s = jax.random.uniform(k[1], (n, 3), minval=jnp.log(scale_range[0]), maxval=jnp.log(scale_range[1]))
    opac = jax.random.uniform(k[2], (n,), minval=opacity_range[0], maxval=opacity_range[1])
    if sh_degree is None:
        colors = jax.random.uniform(k[3], (n, 3))
    else:
        colors = 0.3 * jax.random.normal(k[3], (n, (sh_degree + 1) ** 2, 3))
    return Gaussians(means=means, quats=random_quats(k[4], n), scales=jnp.exp(log_s), opacities=opac,
                     colors=colors)


def front_camera(width, height, *, distance=2.0, focal_scale=1.2):
    """A camera on +z looking at the origin, focal length ``focal_scale`` x max(W, H), centred."""
    f = focal_scale * max(width, height)
    return Camera(viewmat=look_at((0.0, 0.0, distance), (0.0, 0.0, 0.0)),
                  K=intrinsics(f, f, width / 2.0, height / 2.0), width=width, height=height)


def head_scene(key, n, size):
    """The benchmark scene of issue 2 section 4: a head-sized ellipsoid of small Gaussians.

    means uniform in the solid ellipsoid with radii (0.09, 0.12, 0.11) m; scales log-uniform in
    [1, 6] mm; opacities uniform in [0.3, 1]; random rotations and RGB colours; camera 0.6 m in
    front looking at the centre, focal length 1.5 x image size, principal point at the centre.
    """
    k = jax.random.split(key, 6)
    d = jax.random.normal(k[0], (n, 3))
    d = d / jnp.linalg.norm(d, axis=-1, keepdims=True)
    r = jax.random.uniform(k[1], (n, 1)) ** (1.0 / 3.0)  # uniform in the unit ball
    means = d * r * jnp.array([0.09, 0.12, 0.11])
    scales = jnp.exp(jax.random.uniform(k[2], (n, 3), minval=jnp.log(1e-3), maxval=jnp.log(6e-3)))
    opac = jax.random.uniform(k[3], (n,), minval=0.3, maxval=1.0)
    colors = jax.random.uniform(k[4], (n, 3))
    g = Gaussians(means=means, quats=random_quats(k[5], n), scales=scales, opacities=opac, colors=colors)
    cam = Camera(viewmat=look_at((0.0, 0.0, 0.6), (0.0, 0.0, 0.0)),
                 K=intrinsics(1.5 * size, 1.5 * size, size / 2.0, size / 2.0), width=size, height=size)
    return g, cam
