"""The shipped motion generator (vasa3d_jax/motion/assets): loads, and its mouth follows new speech."""

import jax
import numpy as np
import pytest

from vasa3d_jax.audio import speech_features
from vasa3d_jax.motion import DEFAULT_MODEL, generate, generate_from_audio, load_default_model

pytestmark = pytest.mark.skipif(not DEFAULT_MODEL.with_suffix(".npz").exists(),
                                reason="no shipped model (train with experiments/train_motion_synthetic.py)")

# Written for this test: not a corpus sentence (the corpus draws from templates in synthetic.py).
SENTENCE = "Please open the window, my friend, and bring me a cup of warm tea before the evening ends."


SEAM_BOUND = 1.5  # border step / mean within-window step


@pytest.fixture(scope="module")
def gen():
    return load_default_model()


def test_shipped_model_loads(gen):
    assert gen.space.size == gen.config.motion_size
    assert gen.feature_encoder in ("logmel", "whisper")


@pytest.mark.slow
def test_shipped_model_lip_syncs_a_new_sentence(gen):
    from vasa3d_jax.motion import synthetic

    clip = synthetic.make_clip(synthetic.ClipSpec(text=SENTENCE, voice="en-us", rate=165, pitch=50, seed=7))
    x = generate_from_audio(gen, clip.audio, key=jax.random.key(0))
    assert x.shape == clip.motion.shape
    target = np.asarray(gen.space.mouth_open(clip.motion))
    corr = np.corrcoef(np.asarray(gen.space.mouth_open(x)), target)[0, 1]
    other = synthetic.make_clip(synthetic.ClipSpec(text="Seven quiet mountains watched the river.",
                                                   voice="en-gb-x-rp", rate=180, pitch=40, seed=3))
    feats = np.resize(speech_features(other.audio, 25, gen.feature_encoder), (len(target), gen.config.feature_size))
    corr_mis = np.corrcoef(np.asarray(gen.space.mouth_open(generate(gen, feats, key=jax.random.key(0)))),
                           target)[0, 1]
    # Bound: the shipped model reaches 0.58 here against the issue-21 targets (bilabials fully closed,
    # a long silence in this clip), which the model before it (v2) reaches only 0.50; against the
    # old targets v2 reached > 0.6.
    assert corr > 0.55 and corr > corr_mis + 0.3, (corr, corr_mis)
    # no seam: frame-to-frame change across window borders comparable to that within windows
    z = (x - np.asarray(gen.motion_mean)) / np.asarray(gen.motion_std)
    step = np.linalg.norm(np.diff(z, axis=0), axis=-1)
    border = np.arange(len(step)) % gen.config.window == gen.config.window - 1
    assert step[border].mean() < SEAM_BOUND * step[~border].mean()


@pytest.mark.slow
def test_long_silence_gives_calm_motion(gen):
    """Issue 16 §3: speech, 5 s of silence, speech. In the silence (0.5 s in from either side) the
    mouth stays closed and the head moves less than while speaking."""
    from vasa3d_jax.motion.synthetic import synthesize

    a, _ = synthesize("Please open the window, my friend, and bring me a cup of tea.", "en-us")
    b, _ = synthesize("Seven quiet mountains watched the river all night.", "en-us")
    silence = np.zeros(5 * 16000, np.float32)
    x = np.asarray(generate_from_audio(gen, np.concatenate([a, silence, b]), key=jax.random.key(0)))
    na, ns = len(a) // 640, len(silence) // 640
    quiet = np.arange(na + 12, na + ns - 12)
    talking = np.r_[0:na, na + ns:len(x) - 1]
    mouth = np.asarray(gen.space.mouth_open(x))
    assert mouth[quiet].max() < 0.1 < mouth[talking].mean(), (mouth[quiet].max(), mouth[talking].mean())
    d = gen.space.dyn_size
    step = np.linalg.norm(np.diff(x[:, d:d + 3], axis=0), axis=-1)  # head rotation per frame, rad
    assert step[quiet].mean() < 0.75 * step[talking].mean(), (step[quiet].mean(), step[talking].mean())


def test_action_units_stay_in_their_range_in_digital_silence(gen):
    """Issue 21: in 2 s of digital silence the shipped model's raw output put AU25 near -0.77 (an
    intensity below zero that the head rig extrapolates); the sampler clamps intensities to [0, 1]."""
    x = np.asarray(generate_from_audio(gen, np.zeros(32000, np.float32), key=jax.random.key(3)))
    au = [i for i, c in enumerate(gen.space.dyn) if c.unit == "intensity"]
    assert x[:, au].min() >= 0.0 and x[:, au].max() <= 1.0
    assert np.asarray(gen.space.mouth_open(x)).max() < 0.1  # and the mouth rests
