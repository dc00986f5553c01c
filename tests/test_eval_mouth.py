"""The measurement pieces of experiments/eval_mouth.py (the full run is an experiment, not a test)."""

import importlib.util
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_experiment():
    spec = importlib.util.spec_from_file_location("eval_mouth", ROOT / "experiments" / "eval_mouth.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_auc_matches_the_pairwise_count_with_ties():
    em = load_experiment()
    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 6, 40).astype(float), rng.integers(0, 4, 30).astype(float)
    # Independent reference: count every (positive, negative) pair, ties as one half.
    pairs = (pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()
    np.testing.assert_allclose(em.auc(pos, neg), pairs / (len(pos) * len(neg)), rtol=1e-12)
    assert em.auc([2.0, 3.0], [0.0, 1.0]) == 1.0 and em.auc([0.0], [1.0]) == 0.0 and em.auc([1.0], [1.0]) == 0.5
    assert np.isnan(em.auc([], [1.0]))


def test_lagged_auc_finds_a_delayed_mouth():
    em = load_experiment()
    classes = np.array(["bilabial", "open_vowel", "other", "bilabial", "open_vowel", "other"] * 10)
    gap = np.where(classes == "open_vowel", 0.2, 0.0)
    delayed = np.roll(gap, 1)  # the mouth opens one frame after the vowel's label
    assert em.lagged_auc(gap, classes, 0) == 1.0
    assert em.lagged_auc(delayed, classes, 1) == 1.0 and em.lagged_auc(delayed, classes, 0) < 0.6
    m = em.speech_metrics(delayed, classes, delayed, closed=0.03)
    assert m["auc_best_lag"] == 1 and m["bilabial_closed"] == 1.0 and m["open_vowel_gap"] == 0.0


def test_pick_frames_takes_segment_centres():
    em = load_experiment()
    labels = ["SIL", "M", "M", "M", "AA", "m", "ɑː", "ɑː", "M"]
    assert em.pick_frames(labels, "M", 4) == [2, 5, 8]
    assert em.pick_frames(labels, "AA", 1) == [4]
