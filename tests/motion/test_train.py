"""Training: the loss falls, resuming equals an uninterrupted run, 1 vs 4 devices agree."""

import json

import jax
import numpy as np
import pytest
from conftest import TINY, TINY_TRAIN

from vasa3d_jax.motion.data import Stats, WindowSampler
from vasa3d_jax.motion.train import TrainConfig, normalize_batch, train

CFG = TrainConfig(steps=6, batch_size=8, learning_rate=1e-3, warmup_steps=2, log_every=1, save_every=2)


def _params(state):
    return jax.tree.leaves(jax.device_get(state.params))


def _functional_params(state):
    """Parameters except the attention key biases: softmax is invariant to them, so their gradient
    is pure rounding noise that Adam scales up to step size; they do not change any output."""
    flat = jax.tree_util.tree_leaves_with_path(jax.device_get(state.params))
    return [leaf for path, leaf in flat if "key" not in jax.tree_util.keystr(path)
            or "bias" not in jax.tree_util.keystr(path)]


def test_loss_decreases(tiny_run):
    _, workdir = tiny_run
    lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(TINY_TRAIN.log_every, TINY_TRAIN.steps + 1, TINY_TRAIN.log_every))
    losses = [m["loss"] for m in lines]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:2]), losses
    assert all(np.isfinite(m["grad_norm"]) and m["lr"] > 0 for m in lines)
    assert (workdir / "motion_dit.npz").exists() and (workdir / "motion_dit.json").exists()


def test_resume_equals_uninterrupted_run(tiny_clips, tmp_path):
    one = jax.devices()[:1]
    _, full = train(tiny_clips, tmp_path / "a", CFG, TINY, devices=one, progress=False)
    _, part = train(tiny_clips, tmp_path / "b", CFG, TINY, devices=one, stop_after=3, progress=False)
    assert int(part.step) == 3
    _, resumed = train(tiny_clips, tmp_path / "b", CFG, TINY, devices=one, progress=False)
    assert int(resumed.step) == 6
    for a, b in zip(_params(full), _params(resumed)):  # same device, same order: bit for bit
        np.testing.assert_array_equal(a, b)
    # a finished run resumes to itself and does not train further
    _, again = train(tiny_clips, tmp_path / "b", CFG, TINY, devices=one, progress=False)
    assert int(again.step) == 6


def test_one_and_four_devices_agree(tiny_clips, tmp_path, cpu_devices):
    _, one = train(tiny_clips, tmp_path / "one", CFG, TINY, devices=cpu_devices[:1], progress=False)
    _, four = train(tiny_clips, tmp_path / "four", CFG, TINY, devices=cpu_devices, progress=False)
    a_leaves, b_leaves = _functional_params(one), _functional_params(four)
    assert len(a_leaves) == len(_params(one)) - TINY.num_layers  # one key bias per block left out
    for a, b in zip(a_leaves, b_leaves):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    losses = [[json.loads(line)["loss"] for line in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
              for d in ("one", "four")]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_batch_size_must_divide_devices(tiny_clips, tmp_path, cpu_devices):
    cfg = TrainConfig(steps=1, batch_size=6)
    with pytest.raises(ValueError, match="multiple"):
        train(tiny_clips, tmp_path, cfg, TINY, devices=cpu_devices, progress=False)


def test_window_sampler_is_a_function_of_seed_and_step(tiny_clips):
    s1 = WindowSampler(tiny_clips, TINY.window, TINY.context, TINY.emotion_size, seed=3)
    s2 = WindowSampler(tiny_clips, TINY.window, TINY.context, TINY.emotion_size, seed=3)
    a, b = s1.batch(8, 5), s2.batch(8, 5)
    s2.batch(8, 4)
    # bitwise: determinism (same inputs, same program) is the contract
    np.testing.assert_array_equal(a.motion, b.motion)
    assert a.motion.shape == (8, TINY.window, TINY.motion_size)
    assert a.prev_features.shape == (8, TINY.context, TINY.feature_size)
    # a window with context has the K frames right before it
    assert np.any(a.has_prev) and np.any(~a.has_prev)
    norm = normalize_batch(a, Stats.from_clips(tiny_clips))
    assert norm["motion"].dtype == np.float32 and norm["has_prev"].dtype == bool
