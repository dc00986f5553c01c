"""The motion denoiser (vasa3d_jax/motion/dit.py): shapes for every configuration, conditioning."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY

from vasa3d_jax.motion.dit import DiTConfig, MotionDiT, count_params, dummy_conditions, init_params
from vasa3d_jax.motion_space import MotionSpace

CONFIGS = {
    "paper": DiTConfig(),  # 8 layers, width 512, 8 heads
    "shipped-size": DiTConfig(feature_size=80, emotion_size=3, num_layers=4, width=128, num_heads=4,
                              audio_to_motion_tokens=True),
    "logmel": DiTConfig(feature_size=80, num_layers=2, width=64, num_heads=2),
    "long-window": DiTConfig(window=100, context=10, num_layers=1, width=32, num_heads=2),
    "learned-space": DiTConfig.for_space(MotionSpace.learned(40), num_layers=1, width=32, num_heads=4),
    "tiny": TINY,
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_shapes(name):
    cfg = CONFIGS[name]
    params = jax.eval_shape(lambda k: init_params(cfg, k), jax.random.key(0))
    b = 3
    x = jax.ShapeDtypeStruct((b, cfg.window, cfg.motion_size), jnp.float32)
    t = jax.ShapeDtypeStruct((b,), jnp.int32)
    out, aux = jax.eval_shape(MotionDiT(cfg).apply, params, x, t, dummy_conditions(cfg, b))
    assert out.shape == (b, cfg.window, cfg.motion_size)
    assert aux["tokens"].shape == (b, cfg.num_tokens, cfg.width)
    if name == "paper":  # VASA-1 reports ≈ 29 M parameters for its DiT (paper-notes.md §2.1)
        assert 20e6 < count_params(params) < 32e6


def test_bad_window_is_rejected():
    cfg = TINY
    params = jax.eval_shape(lambda k: init_params(cfg, k), jax.random.key(0))
    x = jax.ShapeDtypeStruct((1, cfg.window + 1, cfg.motion_size), jnp.float32)
    with pytest.raises(ValueError, match="windows"):
        jax.eval_shape(MotionDiT(cfg).apply, params, x, jnp.ones((1,), jnp.int32), dummy_conditions(cfg, 1))


_APPLY = jax.jit(lambda p, x, t, c: MotionDiT(TINY).apply(p, x, t, c)[0])


def test_masked_conditions_are_ignored_and_present_ones_matter():
    cfg = TINY
    params = init_params(cfg, jax.random.key(1))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, cfg.window, cfg.motion_size)), jnp.float32)
    t = jnp.array([3, 40])
    base = dummy_conditions(cfg, 2)
    noisy = base.replace(gaze=jnp.ones((2, 2)), audio=jnp.asarray(rng.normal(size=base.audio.shape), jnp.float32),
                         emotion=jnp.ones((2, cfg.emotion_size)), distance=jnp.ones(2))
    # values behind a False mask do not change the prediction (they are replaced by null tokens)
    np.testing.assert_allclose(_APPLY(params, x, t, base), _APPLY(params, x, t, noisy), atol=1e-5)
    # switching a condition on does
    for field in ("gaze_mask", "emotion_mask", "distance_mask"):
        on = noisy.replace(**{field: jnp.ones(2, bool)})
        assert np.abs(np.asarray(_APPLY(params, x, t, on) - _APPLY(params, x, t, noisy))).max() > 1e-4, field
    on = noisy.replace(audio_mask=jnp.ones((2, cfg.window), bool))
    assert np.abs(np.asarray(_APPLY(params, x, t, on) - _APPLY(params, x, t, noisy))).max() > 1e-4


def test_config_roundtrip():
    cfg = CONFIGS["shipped-size"]
    assert DiTConfig(**cfg.to_dict()) == cfg
    assert dataclasses.replace(cfg, window=10).num_tokens == 4 + 2 * 10 + 2 * 10
