"""Whisper's log-mel spectrogram, in numpy float32.

Follows ``whisper/audio.py::log_mel_spectrogram`` (openai/whisper, MIT) step by step, for a
waveform x at 16 kHz:

    (1) X[k, f] = sum_n w[n] x_pad[k*H + n] exp(-2 pi i f n / N),   N = 400, H = 160,
        w = periodic Hann of length N, x_pad = x reflect-padded by N/2 on both sides
        (torch.stft with center=True and its default pad_mode="reflect");
    (2) P[k, f] = |X[k, f]|^2, for frames k = 0 .. K-2 (the last STFT frame is dropped);
    (3) M[k, m] = sum_f B[m, f] P[k, f], B = librosa.filters.mel(sr=16000, n_fft=400, n_mels)
        (Slaney-style filters with area normalisation: Whisper's ``mel_filters.npz`` was made
        with exactly this call);
    (4) L = log10(max(M, 1e-10));
    (5) L = max(L, max(L) - 8)             (an 80 dB floor below the clip's loudest bin);
    (6) out = (L + 4) / 4.

So a waveform of n samples gives n // 160 frames at 100 Hz, frame k centred at k * 10 ms. The
encoder takes 30 s windows: 3000 frames (Whisper's N_FRAMES), with the audio zero-padded first as
``whisper.transcribe`` does (``log_mel_spectrogram(audio, padding=N_SAMPLES)``).
"""

from __future__ import annotations

import functools

import numpy as np

from vasa3d_jax.constants import SAMPLE_RATE  # whisper/audio.py: SAMPLE_RATE

# whisper/audio.py: SAMPLE_RATE, N_FFT, HOP_LENGTH, CHUNK_LENGTH, N_SAMPLES, N_FRAMES.
N_FFT = 400
HOP_LENGTH = 160
CHUNK_SECONDS = 30
N_SAMPLES = CHUNK_SECONDS * SAMPLE_RATE  # 480000 samples per encoder window
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames per encoder window
MEL_FRAME_RATE = SAMPLE_RATE / HOP_LENGTH  # 100 Hz
# whisper/audio.py::log_mel_spectrogram: clamp, dynamic range (8 decades = 80 dB) and affine scaling.
LOG_CLAMP = 1e-10
DYNAMIC_RANGE = 8.0
LOG_OFFSET = 4.0
LOG_SCALE = 4.0


@functools.lru_cache(maxsize=4)
def mel_filters(n_mels: int = 80) -> np.ndarray:
    """Whisper's mel filter bank B of eq. (3): (n_mels, N_FFT // 2 + 1) float32."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _hann_periodic() -> np.ndarray:
    # torch.hann_window(N) is periodic by default: 0.5 - 0.5 cos(2 pi n / N).
    n = np.arange(N_FFT, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)).astype(np.float32)


def log_mel_spectrogram(wav: np.ndarray, n_mels: int = 80, padding: int = 0) -> np.ndarray:
    """Whisper's log-mel spectrogram, eqs. (1)-(6).

    Args:
      wav: (n,) float waveform at 16 kHz, values in [-1, 1].
      n_mels: mel bands (80 for tiny.en and every Whisper but large-v3, which uses 128).
      padding: zeros appended to ``wav`` before the transform (Whisper's ``padding`` argument).

    Returns:
      (T, n_mels) float32, T = (n + padding) // 160, time-major (Whisper returns the transpose).

    Raises:
      ValueError: ``wav`` is not 1-D, or shorter than the 201 samples that reflect padding needs.
    """
    x = np.asarray(wav, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(
            f"log_mel_spectrogram takes a 1-D waveform, got shape {x.shape}; mix to mono first (load_audio does)"
        )
    if padding < 0:
        raise ValueError(f"{padding=} must be >= 0")
    if padding:
        x = np.concatenate([x, np.zeros(padding, np.float32)])
    half = N_FFT // 2
    if x.shape[0] <= half:
        raise ValueError(
            f"the waveform has {x.shape[0]} samples but reflect padding needs more than {half}; "
            "pass padding= (zeros appended) or a longer clip"
        )
    x = np.pad(x, half, mode="reflect")  # eq. (1), center=True
    n_frames = 1 + (x.shape[0] - N_FFT) // HOP_LENGTH
    # eq. (2): all but the last frame.
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP_LENGTH][: n_frames - 1]
    spec = np.fft.rfft(frames * _hann_periodic(), axis=-1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    mel = power @ mel_filters(n_mels).T  # eq. (3)
    log_spec = np.log10(np.maximum(mel, LOG_CLAMP))  # eq. (4)
    log_spec = np.maximum(log_spec, log_spec.max() - DYNAMIC_RANGE)  # eq. (5)
    return ((log_spec + LOG_OFFSET) / LOG_SCALE).astype(np.float32)  # eq. (6)
