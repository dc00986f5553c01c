"""The main job on the embedded default: one real portrait becomes a 3D head that speaks a sentence
while the camera orbits it.

    vasa3d demo --out out/demo          (``make demo``)

Steps: (1) the NASA portrait of Eileen Collins (``skimage.data.astronaut()``, public domain) becomes
an avatar with the quick preset (``portrait.avatar_from_portrait``; cached in ``OUT/work``, so a
second run reuses it); (2) espeak-ng speaks ``SENTENCE`` into a 16 kHz waveform; (3) the shipped
motion generator turns the speech into motion latents at 25 fps (``vasa3d_jax.motion``); (4) each
frame of the avatar is rendered from the orbit camera (one turn over the clip); (5)
``talking_turntable.mp4`` (with the sound track), ``contact_sheet.png`` (frames of the talking
turntable), ``portrait_sheet.png`` (the photo beside the avatar from the front, +-30 and +-60
degrees, mouth closed and open) and ``motion.npy`` are written to the output folder.
"""

from __future__ import annotations

import os
import pathlib

import jax
import numpy as np

from vasa3d_jax import video
from vasa3d_jax.avatar.io import Avatar
from vasa3d_jax.camera import CameraSpec
from vasa3d_jax.motion import MotionGenerator, load_default_model
from vasa3d_jax.session import Talker, save_speech

# About 5 s at espeak-ng's default 175 words per minute: 125 frames.
SENTENCE = "Hello! I was a photograph a few minutes ago, and now I can talk while you look around me."
VOICE = "en-us+f2"  # espeak-ng voice (a female variant, as the portrait)


def astronaut() -> np.ndarray:
    """The demo's portrait: (512, 512, 3) float32 in [0, 1] from scikit-image's bundled data."""
    from skimage import data

    return np.asarray(data.astronaut(), np.float32) / 255.0


def synthesize(text: str, voice: str = VOICE) -> np.ndarray:
    """``text`` spoken by espeak-ng -> (n,) float32 16 kHz mono waveform (the motion corpus's own
    front-end, ``motion.synthetic.synthesize``: one way to run espeak-ng in the project)."""
    from vasa3d_jax.motion.synthetic import synthesize as speak

    if not text.strip():
        raise ValueError("the demo needs a non-empty sentence to speak")
    return speak(text, voice)[0]


def run(out_dir: str | os.PathLike, *, text: str | None = None, size: int = 256, seed: int = 0,
        generator: MotionGenerator | None = None, avatar: Avatar | None = None,
        camera: CameraSpec = "orbit", portrait=None, preset="quick",
        workdir: str | os.PathLike | None = None, progress: bool = True) -> dict:
    """Runs steps (1)-(5) (``text`` None: ``SENTENCE``; ``portrait`` None: the astronaut; ``avatar``
    given: step (1) is skipped); returns the summary (paths, frames, fps, per-stage wall times)."""
    import time

    text = SENTENCE if text is None else text
    out = pathlib.Path(out_dir)
    generator = generator or load_default_model()
    summary: dict = {"text": text}
    if avatar is None:
        from vasa3d_jax.portrait import previews
        from vasa3d_jax.portrait.api import portrait_to_avatar

        result = portrait_to_avatar(astronaut() if portrait is None else portrait, preset,
                                    workdir if workdir is not None else out / "work", generator=generator,
                                    progress=progress)
        avatar = result.avatar
        t0 = time.perf_counter()
        sheet = video.save_png(out / "portrait_sheet.png", previews.contact_sheet(avatar, result.anchor, size))
        summary.update(portrait_sheet=str(sheet), reused_avatar=result.reused, warnings=list(result.warnings),
                       stage_s={**{k: round(v, 2) for k, v in result.timings.items()},
                                "portrait_sheet": round(time.perf_counter() - t0, 2)})
    talker = Talker(avatar, generator, size=size)
    speech = talker.speak(synthesize(text), camera_path=camera, key=jax.random.key(seed))
    return {**summary, **save_speech(speech, out, "talking_turntable.mp4")}
