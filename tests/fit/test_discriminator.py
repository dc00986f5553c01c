"""Multi-scale patch discriminators: output shapes and hinge-loss values."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vasa3d_jax.fit import discriminator as disc


def _conv_out(n, stride):  # 4x4 kernel, padding 2 (pix2pixHD)
    return (n + 2 * 2 - 4) // stride + 1


def _patch_out(n, layers=3):
    for _ in range(layers):
        n = _conv_out(n, 2)
    return _conv_out(_conv_out(n, 1), 1)


@pytest.fixture(scope="module")
def model_and_params():
    model = disc.MultiScaleDiscriminator(features=8)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 48, 64, 3)))
    return model, params


def test_shapes(model_and_params):
    model, params = model_and_params
    logits = model.apply(params, jnp.full((2, 48, 64, 3), 0.5))
    assert len(logits) == 3
    h, w = 48, 64
    for s, lg in enumerate(logits):
        if s:  # 3x3 stride-2 average pool with padding 1
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1
        assert lg.shape == (2, _patch_out(h), _patch_out(w), 1)
    assert set(params["params"]) == {"scale0", "scale1", "scale2"}
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\)"):
        model.apply(params, jnp.zeros((48, 64, 3)))


def test_hinge_values():
    real = (jnp.full((1, 4, 4, 1), 0.5), jnp.full((1, 2, 2, 1), 2.0), jnp.array([[-1.0, 1.0]]))
    fake = (jnp.full((1, 4, 4, 1), -2.0), jnp.full((1, 2, 2, 1), 0.0), jnp.array([[0.0, -0.5]]))
    # Per scale: mean relu(1 - real) + mean relu(1 + fake).
    per_scale = [0.5 + 0.0, 0.0 + 1.0, (2.0 + 0.0) / 2 + (1.0 + 0.5) / 2]
    np.testing.assert_allclose(float(disc.discriminator_hinge_loss(real, fake)), np.mean(per_scale), rtol=1e-6)
    np.testing.assert_allclose(float(disc.generator_hinge_loss(fake)), -np.mean([-2.0, 0.0, -0.25]), rtol=1e-6)


def test_discriminator_learns_to_separate(model_and_params):
    model, params = model_and_params
    k0, k1 = jax.random.split(jax.random.PRNGKey(1))
    real = jnp.clip(0.5 + 0.1 * jax.random.normal(k0, (1, 24, 32, 3)), 0, 1)
    fake = jax.random.uniform(k1, (1, 24, 32, 3))
    opt = optax.adam(2e-3)

    def loss(p):
        return disc.discriminator_hinge_loss(model.apply(p, real), model.apply(p, fake))

    @jax.jit
    def step(p, s):
        l, g = jax.value_and_grad(loss)(p)
        u, s = opt.update(g, s)
        return optax.apply_updates(p, u), s, l

    s = opt.init(params)
    p, s, first = step(params, s)
    for _ in range(20):
        p, s, last = step(p, s)
    assert float(last) < 0.5 * float(first)
