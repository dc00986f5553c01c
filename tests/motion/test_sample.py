"""Window sampling, guidance, determinism, streaming vs batch, seams (vasa3d_jax/motion/sample.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FEATURES, TINY

from vasa3d_jax.motion.data import Stats
from vasa3d_jax.motion.dit import dummy_conditions, init_params
from vasa3d_jax.motion.sample import (Controls, MotionGenerator, SamplerConfig, generate, load_generator,
                                      sample_window, save_generator, stream)
from vasa3d_jax.motion_space import MotionSpace

FAST = SamplerConfig(steps=3)


@pytest.fixture(scope="module")
def untrained(tiny_clips):
    return MotionGenerator.create(init_params(TINY, jax.random.key(0)), Stats.from_clips(tiny_clips), TINY,
                                  MotionSpace.builtin(), "test")


def _frame_features(wav):
    """A local feature map (each frame depends only on its own 640 samples): |mean| of 16 blocks."""
    n = -(-wav.shape[0] // 640)
    frames = np.pad(wav, (0, n * 640 - wav.shape[0])).reshape(n, FEATURES, 640 // FEATURES)
    return np.abs(frames).mean(-1) * 10


def test_generate_shapes_and_determinism(untrained, tiny_clips):
    feats = tiny_clips[0].features[:47]  # 2 full windows + a short one
    a = generate(untrained, feats, key=jax.random.key(1), sampler=FAST)
    b = generate(untrained, feats, key=jax.random.key(1), sampler=FAST)
    c = generate(untrained, feats, key=jax.random.key(2), sampler=FAST)
    assert a.shape == (47, TINY.motion_size) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)  # bitwise: determinism (same inputs, same program) is the contract
    assert np.abs(a - c).max() > 1e-3


def test_stream_of_features_equals_batch(untrained, tiny_clips):
    feats = tiny_clips[1].features[:67]
    batch = generate(untrained, feats, key=jax.random.key(4), sampler=FAST)
    cuts = [0, 7, 8, 31, 55, 67]
    chunks = [feats[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    blocks = list(stream(untrained, chunks, key=jax.random.key(4), sampler=FAST))
    assert [len(b) for b in blocks] == [20, 20, 20, 7]
    np.testing.assert_allclose(np.concatenate(blocks), batch, atol=1e-5)


def test_stream_of_audio_equals_batch_for_a_local_encoder(untrained):
    wav = np.random.default_rng(0).normal(size=16000 * 2 + 123).astype(np.float32) * 0.1
    batch = generate(untrained, _frame_features(wav), key=jax.random.key(5), sampler=FAST)
    chunks = np.array_split(wav, [1000, 9000, 9001, 20000])
    out = np.concatenate(list(stream(untrained, chunks, key=jax.random.key(5), sampler=FAST,
                                     feature_fn=_frame_features, left_context_s=0.2)))
    assert out.shape == batch.shape
    np.testing.assert_allclose(out, batch, atol=1e-5)


def test_guidance_minus_one_removes_the_condition(untrained):
    cfg = TINY
    rng = np.random.default_rng(1)
    cond = dummy_conditions(cfg, 1).replace(
        audio=jnp.asarray(rng.normal(size=(1, cfg.window, cfg.feature_size)), jnp.float32),
        audio_mask=jnp.ones((1, cfg.window), bool), gaze=jnp.ones((1, 2)) * 0.3, gaze_mask=jnp.ones(1, bool))
    key = jax.random.key(9)
    no_guidance = SamplerConfig(steps=3, audio_scale=0.0, gaze_scale=0.0)
    removed = sample_window(untrained, cond, key, SamplerConfig(steps=3, audio_scale=-1.0, gaze_scale=0.0))
    without_audio = sample_window(untrained, cond.replace(audio_mask=jnp.zeros((1, cfg.window), bool)), key,
                                  no_guidance)
    np.testing.assert_allclose(removed, without_audio, atol=1e-4)
    conditional = sample_window(untrained, cond, key, no_guidance)
    assert np.abs(np.asarray(conditional - without_audio)).max() > 1e-3
    guided = sample_window(untrained, cond, key, SamplerConfig(steps=3))  # default λ: 0.5, 1.0
    assert np.abs(np.asarray(guided - conditional)).max() > 1e-3


def test_ddpm_sampler_runs(untrained, tiny_clips):
    out = generate(untrained, tiny_clips[0].features[:20], sampler=SamplerConfig(method="ddpm"))
    assert out.shape == (20, TINY.motion_size) and np.all(np.isfinite(out))


def test_controls_and_errors(untrained, tiny_clips):
    feats = tiny_clips[0].features[:20]
    free = generate(untrained, feats, Controls(gaze=None), sampler=FAST)
    emo = generate(untrained, feats, Controls(emotion=(1.0,) * TINY.emotion_size), sampler=FAST)
    assert np.abs(free - emo).max() > 1e-4
    with pytest.raises(ValueError, match="emotion"):
        generate(untrained, feats, Controls(emotion=(1.0, 2.0)), sampler=FAST)
    with pytest.raises(ValueError, match="window features"):
        generate(untrained, np.zeros((20, FEATURES + 1), np.float32), sampler=FAST)
    with pytest.raises(ValueError, match="expected"):
        generate(untrained, np.zeros((0, FEATURES), np.float32))


def test_save_load_roundtrip(untrained, tiny_clips, tmp_path):
    save_generator(untrained, tmp_path / "gen", extra={"note": "test"})
    loaded = load_generator(tmp_path / "gen")
    assert loaded.config == untrained.config and loaded.space == untrained.space
    feats = tiny_clips[0].features[:25]
    np.testing.assert_allclose(generate(loaded, feats, sampler=FAST), generate(untrained, feats, sampler=FAST),
                               atol=1e-6)
    with pytest.raises(FileNotFoundError, match="train one"):
        load_generator(tmp_path / "missing")


def _seam_ratio(x, window):
    step = np.linalg.norm(np.diff(x, axis=0), axis=-1)  # step[i] = |x[i+1] − x[i]|
    border = np.arange(len(step)) % window == window - 1
    return step[border].mean() / step[~border].mean()


def test_trained_model_follows_the_audio(tiny_generator, tiny_clips):
    gen = tiny_generator
    space = gen.space
    clip = tiny_clips[-1]
    x = generate(gen, clip.features, key=jax.random.key(0), sampler=SamplerConfig(steps=10))
    corr = np.corrcoef(space.mouth_open(x), space.mouth_open(clip.motion))[0, 1]
    x_mis = generate(gen, tiny_clips[-2].features, key=jax.random.key(0), sampler=SamplerConfig(steps=10))
    corr_mis = np.corrcoef(space.mouth_open(x_mis), space.mouth_open(clip.motion))[0, 1]
    # 300 steps of a 2 x 64 model: clearly audio-driven, not yet accurate (the shipped model: ≥ 0.7)
    assert corr > 0.3 and corr > corr_mis + 0.2, (corr, corr_mis)


def test_window_borders_are_continuous(tiny_generator, tiny_clips):
    gen = tiny_generator
    x = generate(gen, tiny_clips[-1].features, key=jax.random.key(0), sampler=SamplerConfig(steps=10))
    ratio = _seam_ratio((x - np.asarray(gen.motion_mean)) / np.asarray(gen.motion_std), TINY.window)
    # A 2 x 64 model after 300 steps: border steps within a few within-window steps. The shipped
    # model is held to a tighter bound (test_shipped_model.py, assets/README.md: seam_jump).
    assert ratio < 3.0, ratio


def test_streaming_logmel_equals_speech_features():
    from vasa3d_jax.audio import speech_features
    from vasa3d_jax.motion.data import speech_feature_fn

    rng = np.random.default_rng(0)
    for n in (16000 * 2 + 77, 5000):
        wav = (rng.normal(size=n) * 0.1 * np.sin(np.arange(n) / 3000)).astype(np.float32)
        np.testing.assert_allclose(speech_feature_fn("logmel")(wav), speech_features(wav, 25, "logmel"), atol=1e-6)
