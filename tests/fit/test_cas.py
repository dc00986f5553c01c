"""Contrast-adaptive sharpening on a step edge, with hand-computed values from eq. (1)-(4)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.fit.cas import cas


def _step(lo, hi, width=8, height=6):
    row = np.where(np.arange(width) < width // 2, lo, hi).astype(np.float32)
    return jnp.asarray(np.broadcast_to(row[None, :, None], (height, width, 3)))


@pytest.mark.parametrize("sharpness, left, right", [
    # Left of the edge: cross min 0.2 + box min 0.2 = 0.4, max 0.8 + 0.8 = 1.6, so
    # A = sqrt(min(0.4, 2 - 1.6) / 1.6) = 0.5; peak = -1/(8 - 3 s); w = A·peak;
    # out = (w (0.2 + 0.2 + 0.2 + 0.8) + 0.2) / (1 + 4w). The right side mirrors it.
    (0.0, (0.2 - 1.4 / 16) / 0.75, (0.8 - 2.6 / 16) / 0.75),  # w = -1/16: 0.15, 0.85
    (1.0, (0.2 - 0.14) / 0.6, (0.8 - 0.26) / 0.6),  # w = -1/10: 0.1, 0.9
])
def test_step_edge(sharpness, left, right):
    out = np.asarray(cas(_step(0.2, 0.8), sharpness))
    np.testing.assert_allclose(out[:, 3], left, atol=1e-6)
    np.testing.assert_allclose(out[:, 4], right, atol=1e-6)
    # Flat regions, including the image borders (clamp-to-edge), are unchanged.
    np.testing.assert_allclose(out[:, :3], 0.2, atol=1e-6)
    np.testing.assert_allclose(out[:, 5:], 0.8, atol=1e-6)


def test_range_channels_and_black():
    x = jax.random.uniform(jax.random.PRNGKey(0), (2, 16, 16, 3))
    out = cas(x, 1.0)
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    # Channels are filtered independently.
    np.testing.assert_allclose(np.asarray(out[..., 1]),
                               np.asarray(cas(jnp.repeat(x[..., 1:2], 3, -1), 1.0)[..., 0]), atol=1e-6)
    # A black neighbourhood (max 0) is left alone rather than producing 0 * inf.
    black = cas(jnp.zeros((8, 8, 3)))
    # bitwise: a black image has zero contrast
    assert np.all(np.isfinite(np.asarray(black))) and float(jnp.abs(black).max()) == 0.0
    # Sharpening increases contrast: the edge's step grows.
    step = cas(_step(0.3, 0.6))
    assert float(step[0, 4, 0] - step[0, 3, 0]) > 0.3
