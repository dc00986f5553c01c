"""Whisper's log-mel against an independent float64 computation with librosa's STFT."""

import librosa
import numpy as np
import pytest

from vasa3d_jax.audio import log_mel_spectrogram


def whisper_log_mel_f64(wav: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """The recipe of whisper/audio.py in float64, via librosa.stft (periodic Hann, reflect-centred)."""
    stft = librosa.stft(wav.astype(np.float64), n_fft=400, hop_length=160, window="hann", center=True,
                        pad_mode="reflect", dtype=np.complex128)
    power = np.abs(stft[:, :-1]) ** 2
    mel = librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels, dtype=np.float64) @ power
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).T


def test_matches_float64_reference_on_speech(speech):
    ours = log_mel_spectrogram(speech)
    ref = whisper_log_mel_f64(speech)
    assert ours.shape == ref.shape == (speech.shape[0] // 160, 80)
    # float32 power spectra: ~1e-6 relative, i.e. ~1e-7 in log10 units, amplified near the 1e-10 clamp.
    np.testing.assert_allclose(ours, ref, atol=2e-4)
    assert np.median(np.abs(ours - ref)) < 1e-5


def test_padding_and_128_mels():
    wav = np.random.default_rng(1).uniform(-0.5, 0.5, 5000).astype(np.float32)
    ours = log_mel_spectrogram(wav, n_mels=128, padding=3000)
    ref = whisper_log_mel_f64(np.concatenate([wav, np.zeros(3000)]), n_mels=128)
    assert ours.shape == (8000 // 160, 128)
    np.testing.assert_allclose(ours, ref, atol=2e-4)


def test_floor_and_scale():
    # Silence: log10(1e-10) = -10 everywhere, so (-10 + 4) / 4 = -1.5, to float32 rounding: XLA's log10
    # on another x86 CPU gave -1.5000002 (1 ulp; issue 22), so allow 4 ulp of 1.5.
    np.testing.assert_allclose(log_mel_spectrogram(np.zeros(1600, np.float32)), np.full((10, 80), -1.5, np.float32),
                               rtol=0, atol=4 * np.spacing(np.float32(1.5)))
    # A loud tone: everything is within 8 decades (2 output units) of the maximum.
    t = np.arange(16000) / 16000
    mel = log_mel_spectrogram((0.9 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32))
    assert np.isclose(mel.max() - mel.min(), 2.0, atol=1e-5)


@pytest.mark.parametrize("wav,match", [(np.zeros((2, 1000)), "1-D"), (np.zeros(150), "reflect padding")])
def test_errors(wav, match):
    with pytest.raises(ValueError, match=match):
        log_mel_spectrogram(wav)
