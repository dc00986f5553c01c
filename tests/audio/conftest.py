"""Shared audio fixtures: real speech from espeak-ng, synthesised once per session."""

import shutil
import subprocess

import pytest

SENTENCES = {
    # About 6 s: one encoder window.
    "short": "The quick brown fox jumps over the lazy dog. Speech features drive the talking head.",
    # About 39 s at 140 words per minute: two overlapping encoder windows.
    "long": (
        "Four score and seven years ago our fathers brought forth on this continent a new nation, "
        "conceived in liberty, and dedicated to the proposition that all men are created equal. "
        "Now we are engaged in a great civil war, testing whether that nation, or any nation so "
        "conceived and so dedicated, can long endure. We are met on a great battlefield of that war. "
        "We have come to dedicate a portion of that field, as a final resting place for those who "
        "here gave their lives that that nation might live. It is altogether fitting and proper "
        "that we should do this."
    ),
}


def espeak_wav(path, text: str, speed: int = 150):
    """Writes espeak-ng speech (22.05 kHz mono s16) to ``path``."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    subprocess.run([exe, "-v", "en-us", "-s", str(speed), "-w", str(path), text], check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def speech_wav_path(tmp_path_factory):
    return espeak_wav(tmp_path_factory.mktemp("speech") / "short.wav", SENTENCES["short"])


@pytest.fixture(scope="session")
def long_speech_wav_path(tmp_path_factory):
    return espeak_wav(tmp_path_factory.mktemp("speech") / "long.wav", SENTENCES["long"], speed=140)


@pytest.fixture(scope="session")
def speech(speech_wav_path):
    from vasa3d_jax.audio import load_audio

    return load_audio(speech_wav_path)

