"""SSIM / D-SSIM against a float64 scipy reference and hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from vasa3d_jax.fit import ssim as ssim_lib


def _ssim_map_ref(x, y):
    """Eq. (1)-(3) in float64 with a full 2D window and zero padding (independent of the code's
    separable convolution)."""
    g1 = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    g = np.outer(g1, g1)
    g /= g.sum()

    def blur(a):
        return np.stack([ndimage.correlate(a[..., c], g, mode="constant", cval=0.0)
                         for c in range(a.shape[-1])], -1)

    x, y = x.astype(np.float64), y.astype(np.float64)
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))


_ssim_map = jax.jit(ssim_lib.ssim_map)


def test_matches_float64_reference():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(24, 30, 3)).astype(np.float32)
    y = np.clip(x + 0.2 * rng.normal(size=x.shape), 0, 1).astype(np.float32)
    ours = np.asarray(_ssim_map(jnp.asarray(x)[None], jnp.asarray(y)[None]))[0]
    np.testing.assert_allclose(ours, _ssim_map_ref(x, y), atol=2e-5)
    np.testing.assert_allclose(float(ssim_lib.d_ssim(jnp.asarray(x), jnp.asarray(y))),
                               1.0 - _ssim_map_ref(x, y).mean(), atol=2e-6)


def test_hand_values():
    # Two constant images: away from the zero-padded border the variances and covariance vanish,
    # so SSIM = (2ab + C1) / (a² + b² + C1).
    a, b = 0.3, 0.6
    m = np.asarray(_ssim_map(jnp.full((1, 32, 32, 3), a), jnp.full((1, 32, 32, 3), b)))
    np.testing.assert_allclose(m[0, 16, 16], (2 * a * b + 1e-4) / (a * a + b * b + 1e-4), rtol=1e-4)
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 20, 20, 3))
    np.testing.assert_allclose(np.asarray(ssim_lib.ssim(x, x)), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ssim_lib.d_ssim(x, x)), 0.0, atol=1e-5)


def test_window_is_normalised_gaussian():
    g = ssim_lib.gaussian_window()
    assert g.shape == (11,) and abs(g.sum() - 1) < 1e-6 and g.argmax() == 5
    np.testing.assert_allclose(g[4] / g[5], np.exp(-1 / (2 * 1.5 ** 2)), rtol=1e-6)


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        ssim_lib.ssim(jnp.zeros((8, 8, 3)), jnp.zeros((8, 9, 3)))
