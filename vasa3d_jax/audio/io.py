"""Audio input: any common file or an array -> float32 mono 16 kHz waveform in [-1, 1].

Files are decoded with soundfile (libsndfile: wav, flac, ogg/vorbis/opus, mp3 and more) and, for
what libsndfile cannot read (m4a/aac, video containers, ...), with PyAV (its bundled ffmpeg). Channels
are averaged to mono and the signal is resampled to 16 kHz with soxr's high-quality setting (librosa's
default, ``res_type="soxr_hq"``).
"""

from __future__ import annotations

import os
import pathlib
from typing import Union

import numpy as np

from vasa3d_jax.constants import FPS, SAMPLE_RATE

# The default limit on input length: ten minutes is far beyond a talking-head clip and keeps the
# float32 waveform and its features below ~100 MB; raise it with max_seconds=.
DEFAULT_MAX_SECONDS = 600.0
# More channels than this in an array is read as a layout mistake rather than multichannel audio.
MAX_CHANNELS = 16

AudioSource = Union[str, os.PathLike, tuple[np.ndarray, int]]


def load_audio(source: AudioSource | np.ndarray, sample_rate: int | None = None, *,
               max_seconds: float | None = DEFAULT_MAX_SECONDS) -> np.ndarray:
    """Reads audio and returns it as float32 mono at 16 kHz, in [-1, 1].

    Args:
      source: a file path; or ``(array, sample_rate)``; or an array together with ``sample_rate``.
        Arrays are (n,) mono, or (n, channels) / (channels, n) (the shorter axis, at most 16, is
        the channel axis). Float arrays must lie in [-1, 1]; integer arrays are PCM and are scaled
        by their type's range.
      sample_rate: the array's sample rate (only with a bare array).
      max_seconds: reject longer input (None: no limit).

    Returns:
      (n,) float32 at 16 kHz. Silence is valid.

    Raises:
      FileNotFoundError: no such file.
      ValueError: empty, undecodable, non-audio, non-finite, out-of-range or too long input.
    """
    if isinstance(source, tuple):
        if len(source) != 2 or sample_rate is not None:
            raise ValueError("pass an array as (array, sample_rate), or as load_audio(array, sample_rate)")
        source, sample_rate = source
    if isinstance(source, (str, os.PathLike)):
        if sample_rate is not None:
            raise ValueError("sample_rate= is only for arrays; a file's rate is read from the file")
        name = str(source)
        data, rate = _decode_file(pathlib.Path(source), max_seconds)
    else:
        if sample_rate is None:
            raise ValueError(
                "an array needs its sample rate: load_audio((array, sample_rate)) or load_audio(array, sample_rate)"
            )
        name = "the array"
        data, rate = _as_float_mono(np.asarray(source), name, strict_range=True), int(sample_rate)
    if rate <= 0:
        raise ValueError(f"{name}: sample rate {rate} must be positive")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{name} contains NaN or infinite samples")
    _check_duration(name, data.shape[0] / rate, max_seconds)
    if rate != SAMPLE_RATE:
        import soxr  # librosa's default resampler ("soxr_hq"), called directly to skip librosa's import time

        data = soxr.resample(data, rate, SAMPLE_RATE, quality="HQ")
    # Resampling (and lossy decoders) can overshoot a full-scale signal by a hair.
    return np.clip(data, -1.0, 1.0).astype(np.float32)


def load_speech(audio) -> np.ndarray:
    """Speech to drive a head: a file path or a 16 kHz float waveform -> (n,) float32 16 kHz mono
    (``load_audio``), at least one motion frame (1 / FPS s) long, with clear errors."""
    if isinstance(audio, (str, os.PathLike)):
        if not pathlib.Path(audio).is_file():
            raise FileNotFoundError(f"audio file {str(audio)!r} not found; pass an existing speech file "
                                    "(wav, flac, mp3, m4a, ...)")
        wav = load_audio(audio)
    else:
        wav = load_audio(np.asarray(audio, np.float32), SAMPLE_RATE)
    if wav.shape[0] < SAMPLE_RATE // int(FPS):
        raise ValueError(f"the audio lasts {wav.shape[0] / SAMPLE_RATE:.3f} s; need at least one frame "
                         f"({1 / FPS:.2f} s) of speech")
    return wav


class AudioTooLongError(ValueError):
    """The input lasts longer than the ``max_seconds`` limit."""


def _check_duration(name: str, duration: float, max_seconds: float | None) -> None:
    if max_seconds is not None and duration > max_seconds:
        raise AudioTooLongError(
            f"{name} lasts {duration:.1f} s, more than max_seconds={max_seconds:g}; "
            "trim or split it, or raise max_seconds"
        )


def _as_float_mono(data: np.ndarray, name: str, strict_range: bool = False) -> np.ndarray:
    if data.dtype.kind in "iu":
        info = np.iinfo(data.dtype)
        data = (data.astype(np.float64) - (info.max + info.min + 1) / 2) / ((info.max - info.min + 1) / 2)
    elif data.dtype.kind != "f":
        raise ValueError(f"{name} has dtype {data.dtype}; audio must be a float or integer PCM array")
    if data.size == 0:
        raise ValueError(f"{name} holds no audio samples; pass a non-empty recording (silence is fine)")
    if data.ndim == 2:
        if data.shape[1] <= MAX_CHANNELS and data.shape[1] <= data.shape[0]:
            data = data.mean(axis=1)
        elif data.shape[0] <= MAX_CHANNELS:
            data = data.mean(axis=0)
        else:
            raise ValueError(f"{name} has shape {data.shape}: neither axis looks like <= {MAX_CHANNELS} channels")
    elif data.ndim != 1:
        raise ValueError(f"{name} has shape {data.shape}; audio must be (n,), (n, channels) or (channels, n)")
    data = data.astype(np.float32)
    peak = float(np.max(np.abs(data), initial=0.0))
    # Decoders of lossy formats legitimately overshoot; arrays from the caller must be normalised.
    if strict_range and peak > 1.0 + 1e-3:
        raise ValueError(
            f"{name} peaks at {peak:g}, outside [-1, 1]: float audio must be normalised "
            "(integer PCM stored as float? divide by 32768 for 16-bit)"
        )
    return data


def _decode_file(path: pathlib.Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    if not path.exists():
        raise FileNotFoundError(f"no audio file at {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; pass an audio file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is an empty file (0 bytes); pass a recording")
    import soundfile

    try:
        info = soundfile.info(str(path))
        _check_duration(str(path), info.frames / info.samplerate, max_seconds)
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return _as_float_mono(data, str(path)), int(rate)
    except soundfile.LibsndfileError as sf_error:
        try:
            return _decode_with_pyav(path, max_seconds)
        except AudioTooLongError:
            raise
        except ValueError as av_error:
            raise ValueError(
                f"{path} could not be decoded as audio (soundfile: {sf_error}; PyAV: {av_error}). "
                "Pass a wav, flac, ogg, mp3 or m4a file, or a (waveform, sample_rate) pair"
            ) from None


def _decode_with_pyav(path: pathlib.Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    try:
        import av
    except ModuleNotFoundError as err:
        raise ValueError("PyAV is not installed (pip install av)") from err
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError("the file has no audio stream")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            if stream.duration is not None and stream.time_base is not None:
                _check_duration(str(path), float(stream.duration * stream.time_base), max_seconds)
            # Decode to interleaved float32, keeping the source rate and channel count.
            resampler = av.AudioResampler(format="flt", layout=stream.codec_context.layout, rate=rate)
            chunks = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1, out.layout.nb_channels))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1, out.layout.nb_channels))
    except av.FFmpegError as err:
        raise ValueError(str(err)) from None
    if not chunks:
        raise ValueError("the audio stream decoded to no samples")
    return _as_float_mono(np.concatenate(chunks, axis=0), str(path)), int(rate)
