"""speech_features: alignment of encoder frames to motion frames, lengths, the encoder registry."""

import dataclasses
import math

import numpy as np
import pytest

from vasa3d_jax.audio import features
from vasa3d_jax.audio import (
    LogMelFeatures,
    get_encoder,
    register_encoder,
    resample_frames,
    speech_features,
    whisper_encoder_outputs,
)


def box_average_brute_force(x, rate, offset, fps, n_out, per_frame=2000):
    """Eq. (3) by the midpoint rule on a fine grid: frame j holds x[j] on [(j - offset)/rate, (j + 1 - offset)/rate)."""
    out = []
    for i in range(n_out):
        t = (i + (np.arange(per_frame) + 0.5) / per_frame) / fps
        j = np.floor(t * rate + offset).astype(int)
        inside = (j >= 0) & (j < len(x))
        out.append(x[j[inside]].mean(axis=0) if inside.any() else x[min(int(t[0] * rate + offset), len(x) - 1)])
    return np.stack(out)


@pytest.mark.parametrize("rate,fps,n_native", [(50, 25, 57), (100, 25, 103), (50, 30, 40), (50, 60, 20)])
def test_resampling_matches_brute_force(rate, fps, n_native):
    x = np.random.default_rng(rate + fps).standard_normal((n_native, 3))
    n_out = math.ceil(n_native / rate * fps)
    got = resample_frames(x, rate, 0.5, fps, n_out)
    np.testing.assert_allclose(got, box_average_brute_force(x, rate, 0.5, fps, n_out), atol=5e-3)


def test_whisper_to_25fps_weights():
    x = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)
    got = resample_frames(x, 50, 0.5, 25, 50)
    i = np.arange(49)
    np.testing.assert_allclose(got[:49], 0.25 * x[2 * i] + 0.5 * x[2 * i + 1] + 0.25 * x[2 * i + 2], atol=1e-6)
    # The last motion frame ends with the audio: only the frames it overlaps count.
    np.testing.assert_allclose(got[49], (0.25 * x[98] + 0.5 * x[99]) / 0.75, atol=1e-6)


@pytest.mark.parametrize("n_samples", [1, 319, 640, 16000, 16001, 23456])
def test_lengths(n_samples):
    wav = np.zeros(n_samples, np.float32)
    feats = speech_features(wav, fps=25, encoder="logmel")
    assert feats.shape == (math.ceil(n_samples / 16000 * 25), 80)
    assert np.all(np.isfinite(feats))


def _burst(seconds, at, rng):
    """Silence with a 10 ms white-noise burst starting at ``at`` seconds."""
    wav = np.zeros(int(seconds * 16000), np.float32)
    start = int(at * 16000)
    wav[start : start + 160] = np.clip(0.3 * rng.standard_normal(160), -1, 1)
    return wav


@pytest.mark.parametrize("frame", [0, 7, 25, 62, 99])
def test_logmel_burst_lands_in_its_frame(frame):
    # The burst occupies [i/25 + 15 ms, i/25 + 25 ms): well inside motion frame i even after the
    # 25 ms analysis window spreads it.
    wav = _burst(4.0, frame / 25 + 0.015, np.random.default_rng(frame))
    feats = speech_features(wav, fps=25, encoder="logmel")
    energy = feats.mean(axis=1)
    assert energy.argmax() == frame
    assert energy[frame] > np.delete(energy, frame).max() + 0.1


def test_whisper_burst_lands_in_its_frame():
    rng = np.random.default_rng(0)
    silence = speech_features(np.zeros(4 * 16000, np.float32))
    for frame in (30, 77):
        feats = speech_features(_burst(4.0, frame / 25 + 0.015, rng))
        change = np.linalg.norm(feats - silence, axis=1)
        assert change.argmax() == frame, (frame, np.round(change[frame - 3 : frame + 4], 2))


def test_whisper_features_of_speech(speech, speech_wav_path):
    feats = speech_features(speech_wav_path)
    assert feats.shape == (math.ceil(speech.shape[0] / 16000 * 25), 384)
    enc = whisper_encoder_outputs(speech)
    np.testing.assert_allclose(feats, resample_frames(enc, 50, 0.5, 25, feats.shape[0]), atol=1e-6)
    # Silence is valid input.
    assert np.all(np.isfinite(speech_features(np.zeros(8000, np.float32))))


@dataclasses.dataclass(frozen=True)
class _RmsEncoder:
    """A toy third-party encoder: RMS energy of 5 ms frames (200 Hz)."""

    name: str = "rms"
    frame_rate: float = 200.0
    frame_offset: float = 0.0  # frame j covers [j * 5 ms, (j + 1) * 5 ms)
    dim: int = 1

    def __call__(self, wav):
        n = math.ceil(len(wav) / 80)
        padded = np.zeros(n * 80, np.float32)
        padded[: len(wav)] = wav
        return np.sqrt(np.mean(padded.reshape(n, 80) ** 2, axis=1, keepdims=True))


def test_registry(monkeypatch):
    monkeypatch.setattr(features, "_ENCODERS", dict(features._ENCODERS))  # keep the global registry clean
    register_encoder("rms", _RmsEncoder)
    assert isinstance(get_encoder("logmel"), LogMelFeatures)
    wav = np.zeros(16000, np.float32)
    wav[8000:8800] = 0.5  # DC on [0.50, 0.55) s: 20 ms of motion frame 12 [0.48, 0.52), 30 ms of frame 13
    by_name = speech_features(wav, encoder="rms")
    by_instance = speech_features(wav, encoder=_RmsEncoder())
    # bitwise: determinism (same inputs, same program) is the contract
    np.testing.assert_array_equal(by_name, by_instance)
    expected = np.zeros(25)
    expected[12], expected[13] = 0.25, 0.375
    np.testing.assert_allclose(by_name[:, 0], expected, atol=1e-6)
    with pytest.raises(ValueError, match="already registered"):
        register_encoder("logmel", LogMelFeatures)
    with pytest.raises(ValueError, match="unknown speech encoder"):
        speech_features(wav, encoder="wav2vec2")
    with pytest.raises(TypeError, match="SpeechEncoder"):
        speech_features(wav, encoder=42)


def test_bad_input():
    with pytest.raises(ValueError, match="1-D 16 kHz"):
        speech_features(np.zeros((2, 16000), np.float32))
    with pytest.raises(ValueError, match="no audio samples"):
        speech_features(np.zeros(0, np.float32))
