"""Adaptive density control for triangle-bound Gaussians, with static shapes.

3D Gaussian splatting's clone/split/prune (Kerbl et al. 2023) with GaussianAvatars' binding rules
(``ShenhanQian/GaussianAvatars``, ``scene/gaussian_model.py``: ``densify_and_clone``,
``densify_and_split``, ``prune_points``; splatting.md §4.1), on a fixed capacity of slots
(gaussians.py) so every function here is pure and jittable for a given capacity.

Statistics, accumulated every step over the views in which a Gaussian is visible (radii > 0):

    (1)  g_v = | (dL/du * W/2 * n_views, dL/dv * H/2 * n_views) |      u, v the projected centre
    (2)  grad = sum_v g_v / count

The W/2, H/2 factors turn gsplat's pixel-space gradient into the NDC-space gradient of Inria's
rasteriser, so the 3DGS threshold 2e-4 applies; the n_views factor undoes the averaging of the loss
over a batch of views (gsplat 1.5.3 ``strategy/default.py``; splatting.md §1.3 item 11).

Densify and prune (one call), with s_max = k_f exp(max(s_l)) the largest world scale on the
canonical mesh and E the scene extent:

    (3)  clone  if grad >= tau and s_max <= percent_dense * E:  copy the Gaussian (same triangle)
    (4)  split  if grad >= tau and s_max >  percent_dense * E:  N = 2 children replace it, each
                mu_l' = mu_l + R(q_l) (exp(s_l) * eps),  eps ~ N(0, I),  s_l' = s_l - log(0.8 N)
    (5)  prune  if sigmoid(opacity logit) < min_opacity, or (when ``max_screen_size`` is set) if the
                largest screen radius > max_screen_size px or s_max > 0.1 E
    (6)  a triangle keeps its last Gaussian: when (5) would empty a triangle, its most opaque
         candidate stays (GaussianAvatars keeps all of that triangle's candidates; one suffices).

Children inherit the parent's triangle. The sample in (4) is drawn in the parent triangle's frame
(local units), which is 3DGS's split carried out in that frame; GaussianAvatars' code draws it with
the world scale and does not add the parent's local position, which we read as an oversight.

Free slots are filled in slot order; when there are fewer free slots than new Gaussians, the
Gaussians that do not fit are not created and ``DensifyReport.overflow`` counts them (splits first:
a split happens only if its second child has a slot). ``densify_and_prune_grow`` avoids overflow by
growing the capacity by whole buckets before densifying (the only step that changes shapes).

Thresholds (GaussianAvatars ``arguments/__init__.py``): densify_grad_threshold 2e-4, percent_dense
0.01, prune opacity 0.005, max screen size 20 px after the first opacity reset, opacity reset to 0.01.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.avatar import binding as bnd
from vasa3d_jax.avatar import gaussians as gs

# GaussianAvatars scene/gaussian_model.py densify_and_split: N = 2 children, scale / (0.8 * N).
SPLIT_CHILDREN = 2
SPLIT_SHRINK = 0.8


@dataclasses.dataclass(frozen=True)
class DensifyConfig:
    """Thresholds of eqs. (3)-(5). Hashable, so it is a static argument of the jitted functions."""

    extent: float  # scene extent E in metres (``camera.scene_extent`` of the training cameras)
    grad_threshold: float = 2e-4  # tau; GaussianAvatars densify_grad_threshold
    percent_dense: float = 0.01  # GaussianAvatars percent_dense
    min_opacity: float = 0.005  # GaussianAvatars densify_and_prune(min_opacity=0.005)
    max_screen_size: float | None = None  # px; GaussianAvatars uses 20 once opacity was reset
    max_world_fraction: float = 0.1  # prune if s_max > this * E (3DGS, with max_screen_size)

    def __post_init__(self):
        if not self.extent > 0:
            raise ValueError(f"DensifyConfig needs a positive scene extent in metres; got "
                             f"{self.extent=} (see vasa3d_jax.camera.scene_extent)")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DensifyStats:
    """Per-slot statistics accumulated between densifications.

    grad_accum: (C,) float32, sum over views of eq. (1)
    count:      (C,) float32, number of views in which the Gaussian was visible
    max_radii:  (C,) float32, largest screen radius seen, pixels
    """

    grad_accum: jax.Array
    count: jax.Array
    max_radii: jax.Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DensifyReport:
    """What one densify-and-prune did (scalars are int32 arrays).

    num_cloned, num_split, num_pruned: Gaussians cloned, split (each into 2) and removed
    num_active: Gaussians after the step
    overflow: new Gaussians that were not created for lack of free slots (0 = nothing dropped)
    changed: (C,) bool, slots whose content was rewritten or removed (reset their optimiser state)
    """

    num_cloned: jax.Array
    num_split: jax.Array
    num_pruned: jax.Array
    num_active: jax.Array
    overflow: jax.Array
    changed: jax.Array


def init_stats(capacity: int) -> DensifyStats:
    z = jnp.zeros((capacity,), jnp.float32)
    return DensifyStats(grad_accum=z, count=z, max_radii=z)


def accumulate(stats: DensifyStats, means2d_grad: jax.Array, radii: jax.Array, width: int,
               height: int) -> DensifyStats:
    """Add one step's views to the statistics, eq. (1).

    means2d_grad: (..., C, 2) gradient of the loss (a mean over the views) w.r.t.
        ``RenderOutput.means2d``; the leading axes are views (cameras, frames).
    radii: (..., C, 2) int, ``RenderOutput.radii`` (0 = culled).
    """
    cap = stats.grad_accum.shape[0]
    if means2d_grad.shape[-2:] != (cap, 2) or radii.shape != means2d_grad.shape:
        raise ValueError(f"need means2d_grad and radii of shape (..., {cap}, 2); got "
                         f"{means2d_grad.shape=} {radii.shape=}")
    g = means2d_grad.reshape(-1, cap, 2)
    r = radii.reshape(-1, cap, 2)
    n_views = g.shape[0]
    scale = jnp.array([width / 2.0 * n_views, height / 2.0 * n_views], jnp.float32)
    visible = jnp.all(r > 0, axis=-1)
    norm = jnp.where(visible, jnp.linalg.norm(g * scale, axis=-1), 0.0)
    return DensifyStats(
        grad_accum=stats.grad_accum + norm.sum(0),
        count=stats.count + visible.sum(0).astype(jnp.float32),
        max_radii=jnp.maximum(stats.max_radii, jnp.max(jnp.max(r, axis=-1), axis=0).astype(jnp.float32)))


def _canonical_max_scale(g: gs.BoundGaussians, b: gs.Binding, face_scale: jax.Array) -> jax.Array:
    return face_scale[b.parent] * jnp.exp(jnp.max(g.log_scales, axis=-1))


def _candidates(g, b, stats, face_scale, config):
    grad = jnp.where(stats.count > 0, stats.grad_accum / jnp.maximum(stats.count, 1.0), 0.0)
    cand = b.active & (grad >= config.grad_threshold)
    small = _canonical_max_scale(g, b, face_scale) <= config.percent_dense * config.extent
    return cand & small, cand & ~small


@functools.partial(jax.jit, static_argnames=("config",))
def count_new(g: gs.BoundGaussians, b: gs.Binding, stats: DensifyStats, face_scale: jax.Array,
              config: DensifyConfig) -> jax.Array:
    """How many slots the next ``densify_and_prune`` needs beyond the active ones (before pruning)."""
    clone, split = _candidates(g, b, stats, face_scale, config)
    return jnp.sum(clone) + (SPLIT_CHILDREN - 1) * jnp.sum(split)


@functools.partial(jax.jit, static_argnames=("config",))
def densify_and_prune(g: gs.BoundGaussians, b: gs.Binding, stats: DensifyStats, key: jax.Array,
                      face_scale: jax.Array, config: DensifyConfig
                      ) -> tuple[gs.BoundGaussians, gs.Binding, DensifyStats, DensifyReport]:
    """Eqs. (3)-(6) on a fixed capacity; returns (gaussians, binding, fresh stats, report).

    face_scale: (F,) k_f of the canonical mesh (binding.triangle_frames(...).scales).
    """
    cap = g.capacity
    num_faces = face_scale.shape[0]
    clone, split = _candidates(g, b, stats, face_scale, config)
    slots = jnp.arange(cap)

    # Requests for free slots: first the second child of every split, then every clone.
    free = ~b.active
    n_free = jnp.sum(free)
    free_idx = jnp.nonzero(free, size=cap, fill_value=cap)[0]
    req_valid = jnp.concatenate([split, clone])
    req_src = jnp.concatenate([slots, slots])
    rank = jnp.cumsum(req_valid) - 1
    fits = req_valid & (rank < n_free)
    target = jnp.where(fits, free_idx[jnp.clip(rank, 0, cap - 1)], cap)  # cap = out of range: dropped
    overflow = jnp.sum(req_valid) - jnp.sum(fits)
    split = split & fits[:cap]  # a split happens only if its second child has a slot
    clone_ok = fits[cap:]

    # Split children (eq. 4): two samples in the parent's local frame.
    eps = jax.random.normal(key, (SPLIT_CHILDREN, cap, 3))
    rot = bnd.quat_to_rotmat(g.quats_local)
    offsets = jnp.einsum("cij,ncj->nci", rot, jnp.exp(g.log_scales) * eps)
    child_means = g.means_local + offsets
    child_log_scales = g.log_scales - math.log(SPLIT_SHRINK * SPLIT_CHILDREN)

    # Child 1 replaces the split parent in place; child 2 and the clones go to free slots.
    def in_place(a, new):
        m = split.reshape((cap,) + (1,) * (a.ndim - 1))
        return jnp.where(m, new, a)

    g1 = g.replace(means_local=in_place(g.means_local, child_means[0]),
                   log_scales=in_place(g.log_scales, child_log_scales))
    src_attrs = jax.tree.map(lambda a: jnp.concatenate([a, a]), g)
    src_attrs = src_attrs.replace(
        means_local=jnp.concatenate([child_means[1], g.means_local]),
        log_scales=jnp.concatenate([child_log_scales, g.log_scales]))
    g2 = jax.tree.map(lambda a, s: a.at[target].set(s, mode="drop"), g1, src_attrs)
    parent = b.parent.at[target].set(b.parent[req_src], mode="drop")
    active = b.active.at[target].set(True, mode="drop")
    written = split | jnp.zeros((cap,), bool).at[target].set(True, mode="drop")

    # Prune (eq. 5) over the densified set, then keep each triangle's last Gaussian (eq. 6).
    opacity = jax.nn.sigmoid(g2.opacity_logits)
    prune = active & (opacity < config.min_opacity)
    if config.max_screen_size is not None:
        s_max = _canonical_max_scale(g2, gs.Binding(parent, active), face_scale)
        big_screen = (stats.max_radii > config.max_screen_size) & ~written
        big_world = s_max > config.max_world_fraction * config.extent
        prune = prune | (active & (big_screen | big_world))
    left = jax.ops.segment_sum((active & ~prune).astype(jnp.int32), parent, num_faces)
    cand_op = jnp.where(prune, opacity, -1.0)
    best = jax.ops.segment_max(cand_op, parent, num_faces)
    keep = prune & (left[parent] == 0) & (cand_op == best[parent])
    first = jax.ops.segment_min(jnp.where(keep, slots, cap), parent, num_faces)
    keep = keep & (slots == first[parent])
    removed = prune & ~keep
    active = active & ~removed

    # Removed slots are reset to the free-slot defaults so nothing of them lingers.
    empty = gs.free_rows(g2, cap)
    g3 = jax.tree.map(lambda a, e: jnp.where(removed.reshape((cap,) + (1,) * (a.ndim - 1)), e, a),
                      g2, empty)
    parent = jnp.where(removed, 0, parent)

    report = DensifyReport(
        num_cloned=jnp.sum(clone_ok).astype(jnp.int32), num_split=jnp.sum(split).astype(jnp.int32),
        num_pruned=jnp.sum(removed).astype(jnp.int32), num_active=jnp.sum(active).astype(jnp.int32),
        overflow=overflow.astype(jnp.int32), changed=written | removed)
    return g3, gs.Binding(parent=parent, active=active), init_stats(cap), report


def densify_and_prune_grow(g: gs.BoundGaussians, b: gs.Binding, stats: DensifyStats,
                           key: jax.Array, face_scale: jax.Array, config: DensifyConfig,
                           bucket: int = gs.DEFAULT_BUCKET):
    """``densify_and_prune`` after growing the capacity (by whole buckets) so nothing overflows.

    Not jittable itself (it decides a shape): call it between jitted fitting steps. Returns
    (gaussians, binding, stats, report, grown) with ``grown = (old_capacity, new_capacity)``; when the
    capacity grew, pad slot-shaped optimiser state with ``gaussians.pad_rows`` before resetting the
    ``report.changed`` rows with ``gaussians.reset_rows``.
    """
    old = g.capacity
    need = int(jnp.sum(b.active)) + int(count_new(g, b, stats, face_scale, config))
    new = max(old, gs.bucket_capacity(need, bucket))
    if new > old:
        g, b = gs.grow(g, b, new)
        stats = gs.pad_rows(stats, old, new)
    g, b, stats, report = densify_and_prune(g, b, stats, key, face_scale, config)
    return g, b, stats, report, (old, new)


@jax.jit
def reset_opacity(g: gs.BoundGaussians, max_opacity: float = 0.01) -> gs.BoundGaussians:
    """Clamp every opacity to at most ``max_opacity`` (3DGS / GaussianAvatars ``reset_opacity``)."""
    return g.replace(opacity_logits=jnp.minimum(g.opacity_logits, gs.logit(max_opacity)))
