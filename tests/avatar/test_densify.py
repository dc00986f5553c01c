"""Densify/prune on a static capacity: bindings inherited, capacities static, no recompiles within a
bucket, growth by buckets, overflow reported."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.avatar import binding as bnd
from vasa3d_jax.avatar import densify as dns
from vasa3d_jax.avatar import gaussians as gs

BUCKET = gs.DEFAULT_BUCKET


@pytest.fixture(scope="module")
def setup(template):
    v, f = template.v_template, template.faces
    g, b = gs.init_bound_gaussians(jax.random.key(0), v, f, per_triangle=1, bucket=BUCKET)
    k = bnd.triangle_frames(jnp.asarray(v, jnp.float32), jnp.asarray(f)).scales
    return g, b, k, len(f)


def _stats(cap, grads, counts):
    return dns.DensifyStats(grad_accum=jnp.asarray(grads * counts, jnp.float32),
                            count=jnp.asarray(counts, jnp.float32),
                            max_radii=jnp.zeros((cap,), jnp.float32))


def test_accumulate_scales_pixel_gradients_like_gsplat():
    cap, w, h = 4, 32, 16
    grad = np.zeros((2, cap, 2), np.float32)  # two views
    grad[:, 0] = [1e-5, 2e-5]
    grad[0, 1] = [3e-5, 0.0]
    radii = np.ones((2, cap, 2), np.int32)
    radii[1, 1] = 0  # Gaussian 1 culled in view 1
    s = dns.accumulate(dns.init_stats(cap), jnp.asarray(grad), jnp.asarray(radii), w, h)
    g0 = np.hypot(1e-5 * w / 2 * 2, 2e-5 * h / 2 * 2)
    np.testing.assert_allclose(s.grad_accum, [2 * g0, 3e-5 * w / 2 * 2, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(s.count, [2, 1, 2, 2])


def test_densify_and_prune_keeps_bindings_and_capacity(setup):
    g, b, k, nf = setup
    cap = g.capacity
    extent = 1.0
    cfg = dns.DensifyConfig(extent=extent)
    smax = np.asarray(k) * 1.0  # log scale 0 -> world scale k_f
    # Clone Gaussian 0 (small), split Gaussian 1 (large), prune 2..5 (one per triangle), and make
    # the duplicates of triangle 7 prunable together so the last one must survive.
    log_scales = np.asarray(g.log_scales).copy()
    log_scales[0] = np.log(0.5 * cfg.percent_dense * extent / smax[0])
    log_scales[1] = np.log(3.0 * cfg.percent_dense * extent / smax[1])
    log_scales[2] = np.log(0.5 * cfg.percent_dense * extent / smax[2])
    logits = np.asarray(g.opacity_logits).copy()
    logits[2:6] = -8.0  # opacity 3e-4 < 0.005
    g = g.replace(log_scales=jnp.asarray(log_scales), opacity_logits=jnp.asarray(logits))
    grads = np.zeros(cap, np.float32)
    grads[[0, 1]] = 5e-4
    grads[2] = 1e-3  # also prunable: its clone is pruned too but the triangle keeps one
    counts = np.where(np.asarray(b.active), 3.0, 0.0)
    stats = _stats(cap, grads, counts)

    assert int(dns.count_new(g, b, stats, k, cfg)) == 3  # clones of 0 and 2, split of 1
    g2, b2, st2, rep = dns.densify_and_prune(g, b, stats, jax.random.key(1), k, cfg)
    assert g2.capacity == cap and b2.capacity == cap and st2.grad_accum.shape == (cap,)
    assert int(rep.num_cloned) == 2 and int(rep.num_split) == 1 and int(rep.overflow) == 0
    new = np.flatnonzero(np.asarray(b2.active) & ~np.asarray(b.active))
    # First free slots, in request order: split child of 1, clone of 0, clone of 2 (pruned again).
    np.testing.assert_array_equal(new, [nf, nf + 1])
    np.testing.assert_array_equal(np.asarray(b2.parent)[new], [1, 0])  # children inherit
    # Triangle 2 had two prunable Gaussians (itself and its clone): exactly one survives.
    assert int(np.sum(np.asarray(b2.active) & (np.asarray(b2.parent) == 2))) == 1
    # Triangles 3, 4, 5 had one prunable Gaussian each: kept (a triangle keeps its last Gaussian).
    for t in (3, 4, 5):
        assert int(np.sum(np.asarray(b2.active) & (np.asarray(b2.parent) == t))) == 1
    assert int(rep.num_pruned) == 1
    assert int(rep.num_active) == nf + 2
    # Every triangle still has at least one Gaussian.
    counts_per_face = np.bincount(np.asarray(b2.parent)[np.asarray(b2.active)], minlength=nf)
    assert counts_per_face.min() >= 1
    # Split rule: both children s_l - log(1.6); they sit around the parent in its local frame.
    np.testing.assert_allclose(g2.log_scales[1], log_scales[1] - np.log(1.6), rtol=1e-6)
    child2 = new[0]
    np.testing.assert_allclose(g2.log_scales[child2], log_scales[1] - np.log(1.6), rtol=1e-6)
    assert not np.allclose(g2.means_local[1], g2.means_local[child2])
    # The clone of 0 is an exact copy.
    np.testing.assert_array_equal(g2.means_local[new[1]], g.means_local[0])  # bitwise: a clone copies its parent
    np.testing.assert_array_equal(g2.colors[new[1]], g.colors[0])
    changed = np.asarray(rep.changed)
    assert changed[[1, nf, nf + 1, nf + 2]].all() and changed.sum() == 4
    assert float(st2.grad_accum.sum()) == 0.0

    # Same shapes again: no recompilation within a bucket.
    size = dns.densify_and_prune._cache_size()
    dns.densify_and_prune(g2, b2, _stats(cap, grads, counts), jax.random.key(2), k, cfg)
    assert dns.densify_and_prune._cache_size() == size


def test_overflow_is_reported_and_growth_is_by_buckets(setup):
    g, b, k, nf = setup
    cap = g.capacity
    cfg = dns.DensifyConfig(extent=100.0)  # everything is "small": every candidate clones
    grads = np.where(np.asarray(b.active), 1e-3, 0.0).astype(np.float32)
    stats = _stats(cap, grads, np.ones(cap, np.float32))
    free = cap - nf
    _, b2, _, rep = dns.densify_and_prune(g, b, stats, jax.random.key(0), k, cfg)
    assert int(rep.overflow) == nf - free and int(rep.num_cloned) == free
    assert bool(b2.active.all())

    g3, b3, st3, rep3, (old, new) = dns.densify_and_prune_grow(g, b, stats, jax.random.key(0), k,
                                                               cfg, bucket=BUCKET)
    assert old == cap and new == gs.bucket_capacity(2 * nf, BUCKET) and new % BUCKET == 0
    assert g3.capacity == new and b3.capacity == new and st3.count.shape == (new,)
    assert int(rep3.overflow) == 0 and int(rep3.num_active) == 2 * nf
    np.testing.assert_array_equal(np.asarray(b3.parent)[nf:2 * nf], np.arange(nf))
    # Slot-shaped optimiser state follows the growth; other leaves pass through.
    state = {"mu": jnp.ones((cap, 3)), "count": jnp.array(3)}
    padded = gs.pad_rows(state, cap, new)
    assert padded["mu"].shape == (new, 3) and padded["count"].shape == ()
    reset = gs.reset_rows(padded, new, rep3.changed)
    assert float(reset["mu"][:nf].sum()) == 3 * nf and float(reset["mu"][nf:].sum()) == 0


def test_reset_opacity():
    g = gs.BoundGaussians(jnp.zeros((3, 3)), jnp.zeros((3, 4)), jnp.zeros((3, 3)),
                          jnp.array([-6.0, 0.0, 3.0]), jnp.zeros((3, 3)))
    o = jax.nn.sigmoid(dns.reset_opacity(g).opacity_logits)
    np.testing.assert_allclose(o, [jax.nn.sigmoid(-6.0), 0.01, 0.01], rtol=1e-5)


def test_densify_config_needs_extent():
    with pytest.raises(ValueError, match="positive scene extent"):
        dns.DensifyConfig(extent=0.0)
