"""The main job on the embedded default: a sentence spoken by the built-in Gaussian head, seen from a
camera that orbits it while it talks.

    vasa3d demo --out out/demo          (``make demo``)

Steps: (1) espeak-ng speaks ``SENTENCE`` into a 16 kHz waveform; (2) the shipped motion generator
turns the speech into motion latents at 25 fps (``vasa3d_jax.motion``); (3) the template Gaussian head
with the procedural skin colouring (``avatar.template.template_avatar``) follows the motion; (4) each frame
is rendered from the orbit camera (one turn over the clip, ``camera.CameraPath``); (5)
``talking_turntable.mp4`` (with the sound track), ``contact_sheet.png`` and ``motion.npy`` are
written to the output folder.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

import jax
import numpy as np

from vasa3d_jax import pipeline
from vasa3d_jax.avatar.io import Avatar
from vasa3d_jax.avatar.template import template_avatar
from vasa3d_jax.camera import CameraSpec
from vasa3d_jax.motion import MotionGenerator, load_default_model

# About 5 s at espeak-ng's default 175 words per minute: 125 frames, ~2-3 minutes on 2 CPU cores.
SENTENCE = "Hello! I am a head made of three D Gaussians, and I can talk while you look around me."
VOICE = "en-us"  # espeak-ng voice
ESPEAK_INSTALL = "apt-get install espeak-ng"


def synthesize(text: str, voice: str = VOICE) -> np.ndarray:
    """``text`` spoken by espeak-ng -> (n,) float32 16 kHz mono waveform."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError(f"the demo speaks with espeak-ng, which is not installed; run `{ESPEAK_INSTALL}`")
    if not text.strip():
        raise ValueError("the demo needs a non-empty sentence to speak")
    with tempfile.TemporaryDirectory() as tmp:
        wav = pathlib.Path(tmp) / "speech.wav"
        done = subprocess.run([exe, "-v", voice, "-w", str(wav), text], capture_output=True, text=True)
        if done.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"espeak-ng failed (exit {done.returncode}): {done.stderr.strip()}")
        return pipeline.load_waveform(wav)


def run(out_dir: str | os.PathLike, *, text: str | None = None, size: int = 256, seed: int = 0,
        generator: MotionGenerator | None = None, avatar: Avatar | None = None,
        camera: CameraSpec = "orbit") -> dict:
    """Runs steps (1)-(5) (``text`` None: ``SENTENCE``); returns the summary (paths, frames, fps, wall time)."""
    text = SENTENCE if text is None else text
    talker = pipeline.Talker(avatar or template_avatar(), generator or load_default_model(), size=size)
    speech = talker.speak(synthesize(text), camera_path=camera, key=jax.random.key(seed))
    return {"text": text, **pipeline.save_speech(speech, out_dir, "talking_turntable.mp4")}
