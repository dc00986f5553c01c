"""The synthetic speech-to-motion corpus: espeak-ng timings, visemes, determinism, file format."""

import math
import re

import numpy as np
import pytest

from vasa3d_jax.constants import FPS, SAMPLE_RATE
from vasa3d_jax.motion import synthetic
from vasa3d_jax.motion.sentences import sentence_bank
from vasa3d_jax.motion_space import MotionSpace

SPACE = MotionSpace.builtin()
MOUTH = {name: i for i, name in enumerate(synthetic.MOUTH_CHANNELS)}


def _mouth_open(mouth: np.ndarray) -> np.ndarray:
    """MotionSpace's mouth readout on the mouth channels alone (independent of the full layout)."""
    weights = dict(zip(SPACE.names, SPACE.mouth_weights))
    return sum(mouth[:, i] * weights[name] for name, i in MOUTH.items())


def _db(x: np.ndarray) -> float:
    return 20 * math.log10(math.sqrt(float(np.mean(x.astype(np.float64) ** 2))) + 1e-9)


@pytest.fixture(scope="module")
def spoken():
    return synthetic.synthesize("Hello there. Maybe a bamboo mop?", "en-us", 160, 50)


def test_phoneme_events_align_with_the_audio(spoken):
    audio, phonemes = spoken
    sr = SAMPLE_RATE
    assert audio.dtype == np.float32 and audio.ndim == 1 and np.abs(audio).max() <= 1.0
    starts = np.array([p.start for p in phonemes])
    ends = np.array([p.end for p in phonemes])
    assert starts[0] == 0.0 and np.all(ends > starts) and np.allclose(starts[1:], ends[:-1])  # tiled
    assert ends[-1] == pytest.approx(len(audio) / sr, abs=1e-6)
    # The sentence break is a pause in the events and silence in the audio.
    pauses = [p for p in phonemes if p.name == "_" and p.end - p.start > 0.1]
    assert pauses, [p.name for p in phonemes]
    for p in pauses:
        assert _db(audio[int(p.start * sr) + 80: int(p.end * sr) - 80]) < -55.0
    # Vowels are loud, and the audio's energy onset is at the first phoneme's start.
    for p in phonemes:
        if synthetic.SYMBOL_VISEME.get(synthetic.phoneme_symbols(p.name)[0]) in ("AA", "EH", "OW"):
            assert _db(audio[int(p.start * sr): int(p.end * sr)]) > -30.0, p
    loud = np.flatnonzero(np.abs(audio) > 1e-3)
    first = next(p for p in phonemes if p.name != "_")
    assert abs(loud[0] / sr - first.start) < 0.02


def test_every_english_voice_maps_to_known_visemes():
    text = "Which witch would wish thirty thorough thinkers joy? Pure cure, bird, measure, rhythm."
    for voice in synthetic.VOICES:
        _, phonemes = synthetic.synthesize(text, voice, 175, 50)
        assert not synthetic.unknown_symbols(phonemes), voice


def _seq(*names, duration=0.1):
    return [synthetic.Phoneme(n, i * duration, (i + 1) * duration) for i, n in enumerate(names)]


def test_bilabials_close_and_open_vowels_open():
    phonemes = _seq("_", "ɑː", "b", "ɑː", "m", "æ", "p", "aɪ", "_")
    mouth = synthetic.mouth_track(phonemes, n_frames=math.ceil(0.9 * FPS))
    opening = _mouth_open(mouth)
    at = lambda p: int((p.start + p.end) / 2 * synthetic.GRID_HZ)  # noqa: E731
    for p in phonemes:
        if p.name in ("b", "m", "p"):
            assert opening[at(p)] < 0.06 and mouth[at(p), MOUTH["AU25"]] < 0.02, p
        if p.name in ("ɑː", "æ"):
            assert opening[at(p)] > 0.5, p
    assert np.all((mouth >= 0) & (mouth <= 1))


def test_rounded_vowels_pucker_and_spread_vowels_stretch():
    mouth = synthetic.mouth_track(_seq("_", "uː", "_", "iː", "_", duration=0.2), n_frames=25)
    u, i = mouth[30], mouth[70]  # centres of /uː/ and /iː/ on the 100 Hz grid
    assert u[MOUTH["AU23"]] > 0.5 and u[MOUTH["AU20"]] < 0.05
    assert i[MOUTH["AU20"]] > 0.3 and i[MOUTH["AU23"]] < 0.05


def test_coarticulation_anticipates_the_next_vowel():
    # The lips during /k/ take the shape of the following vowel (velars have little lip dominance).
    before_u = synthetic.mouth_track(_seq("_", "k", "uː", "_"), 10)[15]
    before_i = synthetic.mouth_track(_seq("_", "k", "iː", "_"), 10)[15]
    assert before_u[MOUTH["AU23"]] > before_i[MOUTH["AU23"]] + 0.2
    assert before_i[MOUTH["AU20"]] > before_u[MOUTH["AU20"]] + 0.08


def test_blinks_follow_the_poisson_rate():
    rng = np.random.default_rng(0)
    minutes = 20
    au43 = synthetic.blink_track(rng, np.full(minutes * 60 * synthetic.GRID_HZ, 0.5), 18.0)
    closed = au43 > 0.5
    onsets = np.flatnonzero(closed[1:] & ~closed[:-1])
    assert 14.0 < len(onsets) / minutes < 22.0
    offsets = np.flatnonzero(~closed[1:] & closed[:-1])
    closed_s = (offsets - onsets[: len(offsets)]) / synthetic.GRID_HZ  # time above half closure
    assert 0.05 < np.median(closed_s) < 0.2


def test_head_nods_on_a_prosodic_accent():
    n = 3 * synthetic.GRID_HZ
    t = np.arange(n) / synthetic.GRID_HZ
    quiet = dict(energy_db=np.full(n, -40.0), f0_z=np.zeros(n), voiced=np.ones(n, bool),
                 activity=np.ones(n))
    accent = dict(quiet, energy_db=-40.0 + 20.0 * np.exp(-0.5 * ((t - 1.5) / 0.05) ** 2))
    style = dict(mean=np.zeros(3), nod_gain=1.0, pitch_gain=1.0)
    base = synthetic.head_pose_track(np.random.default_rng(0), quiet, 0.6, style)
    nod = synthetic.head_pose_track(np.random.default_rng(0), accent, 0.6, style)
    dip = nod[:, 0] - base[:, 0]  # rot_x > 0: the face turns down
    assert 0.01 < dip.max() < 0.08 and 1.45 < t[dip.argmax()] < 1.7
    assert np.all(np.abs(dip[t < 1.3]) < 1e-6)


def test_gaze_stays_near_the_main_direction():
    activity = np.zeros(20 * synthetic.GRID_HZ)
    activity[200:800] = activity[1200:1800] = 1.0
    main = np.array([0.1, -0.05])
    gaze = synthetic.gaze_track(np.random.default_rng(0), main, activity)
    assert np.all(np.abs(gaze - main) < 0.35)
    jumps = np.abs(np.diff(gaze, axis=0)).max(1) > 1e-3
    saccades = np.count_nonzero(jumps[1:] & ~jumps[:-1])
    assert 8 <= saccades <= 60  # fixations of ~0.2-2 s over 20 s


@pytest.fixture(scope="module")
def clip_spec():
    return synthetic.ClipSpec("Bob bought a map. Why?", "en-gb-x-rp+f2", 170, 40, seed=7)


@pytest.fixture(scope="module")
def clip(clip_spec):
    return synthetic.make_clip(clip_spec)


def test_clip_is_deterministic(clip, clip_spec):
    again = synthetic.make_clip(clip_spec)
    # bitwise: determinism (same inputs, same program) is the contract
    np.testing.assert_array_equal(clip.motion, again.motion)
    np.testing.assert_array_equal(clip.audio, again.audio)
    other = synthetic.make_clip(synthetic.ClipSpec(**{**clip_spec.__dict__, "seed": 8}))
    yaw = SPACE.index("rot_y")
    assert not np.array_equal(clip.motion[:, yaw], other.motion[:, yaw])


def test_clip_mouth_follows_its_phonemes(clip):
    opening = np.asarray(SPACE.mouth_open(clip.motion))
    frame = lambda p: int((p.start + p.end) / 2 * FPS)  # noqa: E731
    vowels = [opening[frame(p)] for p in clip.phonemes if p.name in ("ɒ", "ɔː", "a", "aɪ", "ɑː")]
    silent = [opening[frame(p)] for p in clip.phonemes if p.name == "_" and p.end - p.start > 0.12]
    assert vowels and silent and min(vowels) > 0.3 and max(silent) < 0.1


def test_written_clip_format(clip, tmp_path):
    path = tmp_path / "clip.npz"
    synthetic.save_clip(path, clip)
    with np.load(path) as f:
        motion, audio = f["motion"], f["audio"]
        assert motion.dtype == np.float32 and motion.shape[1] == SPACE.size
        assert audio.dtype == np.float32 and audio.ndim == 1 and np.abs(audio).max() <= 1.0
        assert motion.shape[0] == math.ceil(len(audio) / 640)
        assert np.all(motion >= SPACE.low - 1e-6) and np.all(motion <= SPACE.high + 1e-6)
        assert f["gaze"].shape == (2,) and f["distance"].shape == ()
        assert f["emotion"].shape == (len(synthetic.EMOTIONS),)
        assert str(f["text"]) == clip.source.text and str(f["voice"]) == clip.source.voice
        assert tuple(f["channel_names"]) == SPACE.names
        times = f["phoneme_times"]
        assert times.shape == (len(f["phoneme_names"]), 2) and times[-1, 1] == pytest.approx(
            len(audio) / 16000, abs=1e-4)
    assert not list(tmp_path.glob("*.tmp*"))


def _sentences(specs):
    return {s for spec in specs for s in re.split(r"(?<=[.?!]) ", spec.text)}


def test_splits_have_disjoint_sentences():
    train, heldout = synthetic.corpus_specs(40, 10, seed=3)
    assert len(train) == 40 and len(heldout) == 10
    assert not _sentences(train) & _sentences(heldout)
    assert len({s.voice for s in train}) > 5 and len(set(sentence_bank(500))) == 500


def test_missing_library_names_the_apt_package(monkeypatch, tmp_path):
    worker = synthetic._WORKER.read_text().replace('ctypes.util.find_library("espeak-ng")', "None")
    (tmp_path / "worker.py").write_text(worker.replace("libespeak-ng.so.1", "libnot-there.so.9"))
    monkeypatch.setattr(synthetic, "_WORKER", tmp_path / "worker.py")
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        synthetic.synthesize("hello")


def test_synthesis_does_not_depend_on_earlier_utterances(spoken):
    synthetic.synthesize("Something else first, at another rate.", "en-029+m3", 200, 30)
    audio, phonemes = synthetic.synthesize("Hello there. Maybe a bamboo mop?", "en-us", 160, 50)
    np.testing.assert_array_equal(audio, spoken[0])  # bitwise: determinism (same inputs, same program) is the contract
    assert phonemes == spoken[1]


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        synthetic.synthesize("   ")
    with pytest.raises(ValueError, match="no voice"):
        synthetic.synthesize("hello", voice="xx-nonexistent")
