"""The parameters of Gaussians bound to mesh triangles, in a static capacity with an active mask.

Shapes are static under ``jit`` (DESIGN.md, "Conventions"): the Gaussians live in ``capacity`` slots;
``Binding.active`` says which slots hold a Gaussian, ``Binding.parent`` which triangle each one is
bound to (binding.py, eqs. (7)-(9)). Densification (densify.py) fills free slots; when they run out
the capacity grows by whole buckets (``bucket_capacity``), so a jitted fitting step recompiles once
per bucket, not once per densification.

The trainable attributes (``BoundGaussians``, all float) are kept apart from the integer/boolean
binding state (``Binding``), so ``jax.grad`` and optax see only floats.

Initialisation (GaussianAvatars, ``scene/gaussian_model.py::create_from_pcd`` with the binding of
``scene/flame_gaussian_model.py``; splatting.md §4.1): local position 0 (the centroid), log scale 0
(world scale k_f), identity rotation, opacity 0.1, and a random colour unless colours are given. With
``per_triangle = n > 1`` (a choice of this project; GaussianAvatars uses one), positions are drawn
uniformly over the triangle (barycentric sampling) and the log scale is log(1/sqrt(n)), so n
Gaussians cover about the same area as one.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.avatar import binding as bnd

# GaussianAvatars scene/gaussian_model.py: opacities = inverse_sigmoid(0.1 * ones).
INIT_OPACITY = 0.1
# Zeroth-order real SH constant (gsplat / Inria utils/sh_utils.py: C0 = 0.28209479177387814).
SH_C0 = 0.28209479177387814
# Default bucket: capacities are multiples of this many slots (one recompile per 4096 Gaussians).
DEFAULT_BUCKET = 4096


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class BoundGaussians:
    """Trainable attributes of C Gaussian slots, each in its parent triangle's frame.

    means_local:    (C, 3) float32, position in triangle units (binding.py eq. (7))
    quats_local:    (C, 4) float32, wxyz rotation relative to the triangle frame (eq. (8))
    log_scales:     (C, 3) float32, log of the scale in triangle units (eq. (9))
    opacity_logits: (C,)   float32, opacity = sigmoid(logit)
    colors:         (C, 3) float32 RGB, or (C, K, 3) real SH coefficients, K = (degree + 1)^2
    """

    means_local: jax.Array
    quats_local: jax.Array
    log_scales: jax.Array
    opacity_logits: jax.Array
    colors: jax.Array

    @property
    def capacity(self) -> int:
        return self.means_local.shape[-2]

    def replace(self, **kw) -> "BoundGaussians":
        return dataclasses.replace(self, **kw)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Binding:
    """Which slots hold a Gaussian and which triangle each is bound to (not trainable).

    parent: (C,) int32, index of the parent triangle (0 for free slots)
    active: (C,) bool, True where the slot holds a Gaussian
    """

    parent: jax.Array
    active: jax.Array

    @property
    def capacity(self) -> int:
        return self.parent.shape[-1]

    def replace(self, **kw) -> "Binding":
        return dataclasses.replace(self, **kw)


def bucket_capacity(n: int, bucket: int = DEFAULT_BUCKET) -> int:
    """The smallest positive multiple of ``bucket`` that holds ``n`` Gaussians."""
    if bucket <= 0:
        raise ValueError(f"{bucket=} must be positive")
    return max(1, math.ceil(n / bucket)) * bucket


def logit(p):
    """Inverse of the sigmoid (opacity -> logit)."""
    return jnp.log(p) - jnp.log1p(-p)


def rgb_to_sh(rgb: jax.Array, degree: int) -> jax.Array:
    """RGB ``(..., 3)`` -> SH coefficients ``(..., (degree+1)^2, 3)`` with only the DC term set.

    The renderer evaluates colour = SH(dir) + 0.5 (gsplat), so DC = (rgb - 0.5) / C0.
    """
    if not 0 <= degree <= 3:
        raise ValueError(f"SH degree must be in 0..3; got {degree=}")
    k = (degree + 1) ** 2
    dc = (rgb - 0.5) / SH_C0
    rest = jnp.zeros((*rgb.shape[:-1], k - 1, 3), rgb.dtype)
    return jnp.concatenate([dc[..., None, :], rest], axis=-2)


@functools.partial(jax.jit, static_argnames=("per_triangle", "sh_degree", "bucket"))
def init_bound_gaussians(key: jax.Array, vertices, faces, *, per_triangle: int = 1,
                         colors=None, sh_degree: int | None = None,
                         bucket: int = DEFAULT_BUCKET) -> tuple[BoundGaussians, Binding]:
    """Gaussians on every triangle of a mesh (see the module docstring).

    key: PRNG key (barycentric positions and random colours).
    vertices: (V, 3) the mesh the local frames are measured on (e.g. the neutral head).
    faces: (F, 3) int triangles.
    per_triangle: Gaussians per triangle (>= 1).
    colors: None (random RGB in [0, 1]), (F, 3) per-triangle RGB, or (F * per_triangle, 3) per
        Gaussian (Gaussian i is on triangle i // per_triangle).
    sh_degree: None for plain RGB colours, else 0..3 (the colours become the SH DC term).
    bucket: the capacity is ``bucket_capacity(F * per_triangle, bucket)``.
    Returns (gaussians, binding) with the first F * per_triangle slots active.
    """
    faces = jnp.asarray(faces, jnp.int32)
    vertices = jnp.asarray(vertices, jnp.float32)
    if per_triangle < 1:
        raise ValueError(f"{per_triangle=} must be >= 1")
    num_faces = faces.shape[0]
    n = num_faces * per_triangle
    cap = bucket_capacity(n, bucket)
    parent = jnp.repeat(jnp.arange(num_faces, dtype=jnp.int32), per_triangle)
    k_pos, k_col = jax.random.split(key)

    if per_triangle == 1:
        means_local = jnp.zeros((n, 3), jnp.float32)
    else:
        # Uniform points in a triangle: reflect (u, v) of the unit square into the lower half.
        u, v = jax.random.uniform(k_pos, (2, n))
        flip = u + v > 1
        u, v = jnp.where(flip, 1 - u, u), jnp.where(flip, 1 - v, v)
        tri = vertices[faces[parent]]  # (n, 3, 3)
        pts = tri[:, 0] + u[:, None] * (tri[:, 1] - tri[:, 0]) + v[:, None] * (tri[:, 2] - tri[:, 0])
        frames = bnd.gather_frames(bnd.triangle_frames(vertices, faces), parent)
        means_local = bnd.world_to_local_means(pts, frames)

    if colors is None:
        rgb = jax.random.uniform(k_col, (n, 3))
    else:
        colors = jnp.asarray(colors, jnp.float32)
        if colors.shape == (num_faces, 3):
            rgb = colors[parent]
        elif colors.shape == (n, 3):
            rgb = colors
        else:
            raise ValueError(f"colors must be (F, 3) = ({num_faces}, 3) per triangle or "
                             f"(F * per_triangle, 3) = ({n}, 3) per Gaussian; got {colors.shape}")
    col = rgb if sh_degree is None else rgb_to_sh(rgb, sh_degree)

    g = BoundGaussians(
        means_local=means_local,
        quats_local=jnp.tile(jnp.array([1.0, 0.0, 0.0, 0.0], jnp.float32), (n, 1)),
        log_scales=jnp.full((n, 3), -0.5 * math.log(per_triangle), jnp.float32),
        opacity_logits=jnp.full((n,), logit(INIT_OPACITY), jnp.float32),
        colors=col)
    b = Binding(parent=parent, active=jnp.ones((n,), bool))
    return grow(g, b, cap)


def free_rows(g: BoundGaussians, rows: int) -> BoundGaussians:
    """Attributes of ``rows`` empty slots: identity rotation, unit scale, zero everything else."""
    return BoundGaussians(
        means_local=jnp.zeros((rows, 3), jnp.float32),
        quats_local=jnp.tile(jnp.array([1.0, 0.0, 0.0, 0.0], jnp.float32), (rows, 1)),
        log_scales=jnp.zeros((rows, 3), jnp.float32),
        opacity_logits=jnp.full((rows,), logit(INIT_OPACITY), jnp.float32),
        colors=jnp.zeros((rows, *g.colors.shape[1:]), g.colors.dtype))


def grow(g: BoundGaussians, b: Binding, capacity: int) -> tuple[BoundGaussians, Binding]:
    """Pad to ``capacity`` slots with free (inactive) ones; the existing slots keep their index."""
    old = g.capacity
    if capacity < old:
        raise ValueError(f"cannot shrink: {capacity=} < current capacity {old}")
    if capacity == old:
        return g, b
    extra = free_rows(g, capacity - old)
    g = jax.tree.map(lambda a, e: jnp.concatenate([a, e], axis=0), g, extra)
    b = Binding(parent=jnp.concatenate([b.parent, jnp.zeros((capacity - old,), jnp.int32)]),
                active=jnp.concatenate([b.active, jnp.zeros((capacity - old,), bool)]))
    return g, b


def pad_rows(tree, capacity: int, new_capacity: int):
    """Zero-pad every array leaf whose leading axis is ``capacity`` to ``new_capacity`` rows.

    For state that follows the slots (e.g. an optax Adam state of ``BoundGaussians``) when the
    capacity grows; other leaves (step counts, network moments) pass through unchanged.
    """
    def pad(a):
        if isinstance(a, (jax.Array, np.ndarray)) and a.ndim >= 1 and a.shape[0] == capacity:
            return jnp.concatenate([a, jnp.zeros((new_capacity - capacity, *a.shape[1:]), a.dtype)])
        return a
    return jax.tree.map(pad, tree)


def reset_rows(tree, capacity: int, rows: jax.Array):
    """Zero the rows where ``rows (capacity,) bool`` is True in every leaf with leading axis
    ``capacity`` (e.g. the Adam moments of slots that densification rewrote)."""
    def reset(a):
        if isinstance(a, (jax.Array, np.ndarray)) and a.ndim >= 1 and a.shape[0] == capacity:
            m = rows.reshape((capacity,) + (1,) * (a.ndim - 1))
            return jnp.where(m, jnp.zeros_like(a), a)
        return a
    return jax.tree.map(reset, tree)
