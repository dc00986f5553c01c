"""The Flax Whisper tiny.en encoder: weight mapping, ctranslate2 equivalence, long-audio windows."""

import math

import jax
import numpy as np
import pytest

from vasa3d_jax.audio import (
    WhisperEncoder,
    encode_mel_windows,
    load_audio,
    load_whisper_encoder,
    log_mel_spectrogram,
    whisper_encoder_outputs,
)
from vasa3d_jax.audio.whisper import default_model_dir, sinusoids

N_SAMPLES = 480000


@pytest.fixture(scope="module")
def speech_window(speech):
    """A 30 s log-mel window of real speech (padded as Whisper pads) and our encoder's output on it."""
    mel = log_mel_spectrogram(speech, padding=N_SAMPLES)[:3000]
    return mel, encode_mel_windows(mel)


def test_params_cover_the_module():
    config, params = load_whisper_encoder()
    assert (config.n_mels, config.n_ctx, config.width, config.n_heads, config.n_layers) == (80, 1500, 384, 6, 4)
    fresh = jax.eval_shape(lambda: WhisperEncoder(config).init(jax.random.key(0), np.zeros((1, 3000, 80), np.float32)))
    assert jax.tree.structure(fresh["params"]) == jax.tree.structure(params)
    assert jax.tree.map(lambda a: (a.shape, a.dtype), fresh["params"]) == jax.tree.map(lambda a: (a.shape, a.dtype), params)


def test_stored_positions_are_whisper_sinusoids():
    _, params = load_whisper_encoder()
    # float16 storage: |error| <= 2^-11 relative, and |P| <= 1.
    np.testing.assert_allclose(np.asarray(params["position_encodings"]), sinusoids(1500, 384), atol=2.0**-11)


def test_matches_ctranslate2_encoder(speech_window):
    """CTranslate2 with compute_type float32 runs the same fp16-stored weights, upcast to float32."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    mel, ours = speech_window
    model = ctranslate2.models.Whisper(str(default_model_dir()), device="cpu", compute_type="float32", intra_threads=2)
    ref = np.asarray(model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.T[None]))))[0]
    assert ours.shape == ref.shape == (1500, 384)
    # Both evaluate identical float32 weights, so only float32 rounding order differs (measured 2.3e-6).
    # The fp16 storage itself moves outputs by ~1e-3 relative against the original fp32 checkpoint,
    # a bound no port of this file can beat, and the tolerance stays far below it.
    rel = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
    assert rel < 2e-5, rel
    frame_rel = np.linalg.norm(ours - ref, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert frame_rel.max() < 1e-4, frame_rel.max()


def test_short_audio_is_padded_and_trimmed(speech, speech_window):
    _, window = speech_window
    enc = whisper_encoder_outputs(speech)
    assert enc.shape == (math.ceil(speech.shape[0] / 320), 384)
    np.testing.assert_allclose(enc, window[: enc.shape[0]], atol=1e-5)


def test_rejects_wrong_window_shape():
    with pytest.raises(ValueError, match="3000"):
        encode_mel_windows(np.zeros((1000, 80), np.float32))


def test_long_audio_windows_are_cross_faded(long_speech_wav_path):
    """> 30 s: windows at 0 s and 20 s, cross-faded over their 10 s overlap (eq. (2) of features.py)."""
    wav = load_audio(long_speech_wav_path)
    assert 30 < wav.shape[0] / 16000 < 50
    enc = whisper_encoder_outputs(wav)
    assert enc.shape == (math.ceil(wav.shape[0] / 320), 384)
    # Independent single-window runs over the same log-mel (global floor, as features.py computes it).
    mel = log_mel_spectrogram(wav, padding=N_SAMPLES)
    first, second = encode_mel_windows(mel[:3000]), encode_mel_windows(mel[2000:5000])
    n = enc.shape[0]
    # Outside the overlap (enc frames 1000..1500) each output is exactly one window's.
    np.testing.assert_allclose(enc[:1000], first[:1000], atol=1e-5)
    np.testing.assert_allclose(enc[1500:], second[500 : n - 1000], atol=1e-5)
    # Inside it, a linear cross-fade from the first window to the second.
    w = (np.arange(500) + 0.5)[:, None] / 500
    np.testing.assert_allclose(enc[1000:1500], (1 - w) * first[1000:] + w * second[:500], atol=1e-4)
    # No seam: the largest frame-to-frame step around the overlap is no larger than the single
    # windows' own steps there, whereas cutting from one window to the other at 25 s would jump by
    # the full window-to-window difference.
    steps = np.linalg.norm(np.diff(enc[900:1600], axis=0), axis=-1).max()
    own = max(np.linalg.norm(np.diff(first[900:1500], axis=0), axis=-1).max(),
              np.linalg.norm(np.diff(second[:600], axis=0), axis=-1).max())
    cross = np.linalg.norm(first[1000:1500] - second[:500], axis=-1).max() / 500
    assert steps <= own + cross + 1e-3
    cut = np.linalg.norm(second[250] - first[1249])
    typical = np.median(np.linalg.norm(np.diff(first[:1000], axis=0), axis=-1))
    assert cut > 1.5 * typical  # why the cross-fade is needed: Whisper's features depend on the window offset
