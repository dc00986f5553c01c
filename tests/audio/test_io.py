"""load_audio: every common format, arrays, mono mixing, resampling, and clear errors."""

import shutil
import subprocess

import numpy as np
import pytest
import soundfile

from vasa3d_jax.audio import AudioTooLongError, load_audio

RATE = 44100
SECONDS = 1.5
FREQ = 440.0


def tone(seconds: float, rate: int, channels: int = 2) -> np.ndarray:
    """(n, channels) float32 sine at amplitude 0.5; the right channel is half the left."""
    t = np.arange(int(seconds * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * FREQ * t).astype(np.float32)
    return np.stack([x, 0.5 * x][:channels], axis=1)


def ffmpeg_exe() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    return exe


def check_tone(wav: np.ndarray, lossy: bool):
    """16 kHz mono 440 Hz at the mono mix's amplitude (0.375 peak, 0.265 RMS)."""
    assert wav.dtype == np.float32 and wav.ndim == 1
    # Lossy encoders add priming/padding samples (mp3: ~1105, aac: 1024 at 44.1 kHz).
    assert abs(wav.shape[0] - SECONDS * 16000) <= (1200 if lossy else 1)
    spectrum = np.abs(np.fft.rfft(wav))
    peak_hz = np.argmax(spectrum) * 16000 / wav.shape[0]
    assert abs(peak_hz - FREQ) < 2.0
    core = wav[2000:-2000]  # away from codec edge effects
    np.testing.assert_allclose(np.sqrt(np.mean(core**2)), 0.375 / np.sqrt(2), rtol=0.05 if lossy else 1e-3)


@pytest.mark.parametrize("ext,fmt,subtype", [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"),
                                             ("ogg", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III")])
def test_soundfile_formats(tmp_path, ext, fmt, subtype):
    path = tmp_path / f"tone.{ext}"
    soundfile.write(path, tone(SECONDS, RATE), RATE, format=fmt, subtype=subtype)
    check_tone(load_audio(path), lossy=ext in ("ogg", "mp3"))


def test_m4a_through_pyav(tmp_path):
    src, dst = tmp_path / "tone.wav", tmp_path / "tone.m4a"
    soundfile.write(src, tone(SECONDS, RATE), RATE)
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(src), "-c:a", "aac", "-b:a", "128k", str(dst)], check=True)
    check_tone(load_audio(dst), lossy=True)


def test_arrays_match_files(tmp_path):
    stereo = tone(SECONDS, RATE)
    path = tmp_path / "tone.wav"
    soundfile.write(path, stereo, RATE, subtype="FLOAT")
    from_file = load_audio(path)
    np.testing.assert_allclose(load_audio((stereo, RATE)), from_file, atol=1e-6)
    np.testing.assert_allclose(load_audio(stereo.T, RATE), from_file, atol=1e-6)  # (channels, n)
    pcm = np.round(stereo * 32767).astype(np.int16)
    np.testing.assert_allclose(load_audio(pcm, RATE), from_file, atol=1e-4)
    check_tone(from_file, lossy=False)


def test_16k_mono_passes_through_unchanged():
    x = np.random.default_rng(0).uniform(-1, 1, 16000).astype(np.float32)
    np.testing.assert_array_equal(load_audio(x, 16000), x)  # bitwise: 16 kHz mono input passes through untouched


def test_silence_is_valid():
    assert np.all(load_audio(np.zeros(8000, np.float32), 8000) == 0)


def test_too_long(tmp_path):
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(2.0, RATE), RATE)
    with pytest.raises(AudioTooLongError, match="max_seconds"):
        load_audio(path, max_seconds=1.0)
    with pytest.raises(AudioTooLongError, match="max_seconds"):
        load_audio(np.zeros(32000, np.float32), 16000, max_seconds=1.0)
    assert load_audio(path, max_seconds=None).shape == (32000,)


def test_too_long_m4a_checked_before_decoding(tmp_path):
    src, dst = tmp_path / "tone.wav", tmp_path / "tone.m4a"
    soundfile.write(src, tone(2.0, RATE), RATE)
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(src), "-c:a", "aac", str(dst)], check=True)
    with pytest.raises(AudioTooLongError):
        load_audio(dst, max_seconds=1.0)


@pytest.mark.parametrize("content,match", [
    (b"", "empty file"),
    (b"this is a text file, not audio\n" * 20, "could not be decoded"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4, "could not be decoded"),
])
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_audio(path)


def test_empty_recording(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(ValueError, match="no audio samples"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_audio(tmp_path / "nope.wav")


@pytest.mark.parametrize("array,rate,match", [
    (np.zeros(100, np.float32), None, "sample rate"),
    (np.array([0.0, 2.0, 0.5], np.float32), 16000, "outside \\[-1, 1\\]"),
    (np.array([0.0, np.nan], np.float32), 16000, "NaN"),
    (np.zeros((2, 3, 4), np.float32), 16000, "shape"),
    (np.zeros((100, 100), np.float32), 16000, "channels"),
    (np.array(["a"]), 16000, "dtype"),
    (np.zeros(0, np.float32), 16000, "no audio samples"),
])
def test_bad_arrays(array, rate, match):
    with pytest.raises(ValueError, match=match):
        load_audio(array, rate)


def test_real_speech_file(speech_wav_path):
    wav = load_audio(speech_wav_path)
    info = soundfile.info(speech_wav_path)
    assert abs(wav.shape[0] - round(info.frames * 16000 / info.samplerate)) <= 1
    assert 0.05 < np.abs(wav).max() <= 1.0
