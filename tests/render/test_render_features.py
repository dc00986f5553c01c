"""``render_features``: any number of per-Gaussian channels through the renderer's one path.

Checked against the dense oracle (``dense_render_features``: ``kernels/splat/reference.py`` behind
the same projection) for D != 3, for values and for gradients with respect to the features, the
means and the background (random cotangents); ``render`` is ``render_features`` of the colours;
the capacity policy (``render/capacity.py``) grows on overflow and never returns a truncated image.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from render_scenes import front_camera, random_scene

from vasa3d_jax.render import (Camera, OverflowReport, capacity_for, dense_render_features, isect_need,
                               render, render_features, required_capacity, run_checked)
from vasa3d_jax.render.capacity import CAPACITY_BUCKET, CAPACITY_MARGIN

W, H, N = 38, 22, 96  # not a multiple of the 8-pixel XLA tile
CAM = front_camera(W, H)
TOL = 1e-5  # as test_render_dense.py: issue 2's float32 image tolerance


def _features(key, d):
    return jax.random.normal(key, (N, d))  # signed, not colours: nothing is clamped


@functools.partial(jax.jit, static_argnames=("backend",))
def _both(g, feats, bg, *, backend="xla"):
    return render_features(g, feats, CAM, bg, backend), dense_render_features(g, feats, CAM, bg)


@pytest.mark.parametrize("d", [1, 5, 9])
def test_features_match_dense_oracle(d):
    g = random_scene(jax.random.PRNGKey(0), N)
    feats = _features(jax.random.PRNGKey(1), d)
    bg = jnp.linspace(-0.5, 0.5, d)
    out, (want, alpha, depth) = _both(g, feats, bg)
    assert out.features.shape == (H, W, d) and int(out.isect_overflow) == 0
    np.testing.assert_allclose(out.features, want, atol=TOL * 4, rtol=0)  # |f| ~ 2: scaled tolerance
    np.testing.assert_allclose(out.alpha, alpha, atol=TOL, rtol=0)
    np.testing.assert_allclose(out.depth, depth, atol=TOL * 4.0, rtol=2e-6)
    assert float(jnp.max(alpha)) > 0.5  # the scene covers the image


def test_zero_features_give_depth_and_alpha():
    """D = 0 (a z-buffer): the depth and alpha of any other feature render."""
    g = random_scene(jax.random.PRNGKey(2), N)
    out = render_features(g, jnp.zeros((N, 0)), CAM)
    _, want_alpha, want_depth = dense_render_features(g, jnp.zeros((N, 0)), CAM)
    assert out.features.shape == (H, W, 0)
    np.testing.assert_allclose(out.alpha, want_alpha, atol=TOL, rtol=0)
    np.testing.assert_allclose(out.depth, want_depth, atol=TOL * 4.0, rtol=2e-6)


def test_render_is_render_features_of_colours():
    """RGB and SH (evaluated per camera, a batch of two cameras) give the same image both ways."""
    cams = Camera(viewmat=jnp.stack([CAM.viewmat, front_camera(W, H, distance=2.5).viewmat]),
                  K=jnp.stack([CAM.K, CAM.K]), width=W, height=H)
    bg = jnp.array([0.2, 0.5, 0.9])
    for sh_degree in (None, 2):
        g = random_scene(jax.random.PRNGKey(3), N, sh_degree=sh_degree)
        out = render(g, cams, bg)
        if sh_degree is None:
            colors = g.colors
        else:  # the dense oracle's colours for each camera
            from vasa3d_jax.render import projection, sh
            colors = jnp.stack([sh.sh_to_color(g.colors, g.means, projection.camera_center(v)) for v in cams.viewmat])
        ref = render_features(g, colors, cams, bg)
        np.testing.assert_allclose(out.rgb, ref.features, atol=1e-6, rtol=0)  # same program up to fusion
        np.testing.assert_allclose(out.alpha, ref.alpha, atol=1e-6, rtol=0)
        np.testing.assert_allclose(out.depth, ref.depth, atol=1e-6, rtol=1e-6)


def _assert_grads_close(got, want, rtol):
    """Per-leaf check scaled by the leaf's largest entry (gradients sum many pixel terms)."""
    for name, a, b in zip(("features", "means", "background"), got, want):
        a, b = np.asarray(a), np.asarray(b)
        assert np.abs(b).max() > 0, f"{name}: reference gradient is all zero"
        np.testing.assert_allclose(a, b, atol=rtol * np.abs(b).max(), rtol=0, err_msg=name)


@jax.jit
def _grads(g, feats, bg, ct):
    def loss(out, alpha, depth):
        d = out.shape[-1]
        return (jnp.sum(out * ct[..., :d]) + jnp.sum(alpha * ct[..., d])
                + 0.05 * jnp.sum(depth * ct[..., d + 1]))  # depth divides by alpha: small weight

    def ours(feats, means, bg):
        o = render_features(g.replace(means=means), feats, CAM, bg)
        return loss(o.features, o.alpha, o.depth)

    def dense(feats, means, bg):
        return loss(*dense_render_features(g.replace(means=means), feats, CAM, bg))

    args = (feats, g.means, bg)
    return jax.grad(ours, argnums=(0, 1, 2))(*args), jax.grad(dense, argnums=(0, 1, 2))(*args)


def test_gradients_match_dense_autodiff_for_five_channels():
    """Random cotangent on features, alpha and depth: the custom VJP against autodiff of the oracle.
    Tolerance as test_render_grads.py's render VJP (5e-4 of the largest entry, float32 sums)."""
    g = random_scene(jax.random.PRNGKey(4), N)
    g = g.replace(opacities=g.opacities.at[:12].set(1.0))  # the 0.999 clamp gates some gradients
    feats = _features(jax.random.PRNGKey(5), 5)
    ct = jax.random.normal(jax.random.PRNGKey(6), (H, W, 7))
    got, want = _grads(g, feats, jnp.array([0.1, -0.2, 0.3, 0.0, 0.5]), ct)
    _assert_grads_close(got, want, rtol=5e-4)


def test_bad_feature_shapes_raise():
    g = random_scene(jax.random.PRNGKey(0), N)
    with pytest.raises(ValueError, match="features must be"):
        render_features(g, jnp.zeros((N + 1, 4)), CAM)
    with pytest.raises(ValueError, match="background must be"):
        render_features(g, jnp.zeros((N, 4)), CAM, jnp.zeros(3))
    with pytest.raises(ValueError, match="render_features"):
        render(g.replace(colors=jnp.zeros((N, 4))), CAM)


def test_capacity_policy_grows_and_reports():
    """Eq. 2 by hand, and eq. 3: a run at too small a capacity is redone once at the grown capacity
    (whose result is exact), or raises; the need measured up front equals what the render reports."""
    assert capacity_for(1) == CAPACITY_BUCKET
    assert capacity_for(np.array([10, CAPACITY_BUCKET])) == 2 * CAPACITY_BUCKET  # 1.25 x 8192 -> 2 buckets
    assert capacity_for(CAPACITY_BUCKET / CAPACITY_MARGIN) == CAPACITY_BUCKET
    g = random_scene(jax.random.PRNGKey(7), N)
    feats = _features(jax.random.PRNGKey(8), 2)
    need = required_capacity(g, CAM)
    assert need == int(isect_need(g, CAM)) == int(render_features(g, feats, CAM).num_isects)

    calls = []

    def run(capacity):
        calls.append(capacity)
        out = render_features(g, feats, CAM, capacity=capacity)
        return out.features, out.isect_overflow, out.num_isects

    report = OverflowReport(capacity=need // 2)
    img = run_checked(run, report)
    assert calls == [need // 2, capacity_for(need)] and report.resizes == 1
    np.testing.assert_allclose(img, dense_render_features(g, feats, CAM)[0], atol=TOL * 4, rtol=0)
    with pytest.raises(RuntimeError, match=f"capacity is {need // 2}"):
        run_checked(run, OverflowReport(capacity=need // 2), on_overflow="raise")
