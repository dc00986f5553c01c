"""The main job on the embedded default: one real portrait becomes a 3D head that speaks a sentence
while the camera orbits it.

    vasa3d demo --out out/demo                                  (``make demo``)
    vasa3d demo --portrait me.jpg --audio speech.wav            your photo, your speech

Steps: (1) the NASA portrait of Eileen Collins (``skimage.data.astronaut()``, public domain), or the
given photo, becomes an avatar with the quick preset (``portrait.portrait_to_avatar``; cached in the
work directory: the command line passes ``portrait.api.cache_workdir``, so ``vasa3d speak`` and a
second demo reuse it); (2) espeak-ng speaks ``SENTENCE`` (or the given text) into a 16 kHz waveform,
unless a waveform is given; (3) the shipped
motion generator turns the speech into motion latents at 25 fps (``vasa3d_jax.motion``); (4) each
frame of the avatar is rendered from the orbit camera (one turn over the clip); (5)
``talking_turntable.mp4`` (with the sound track), ``contact_sheet.png`` (frames of the talking
turntable), ``portrait_sheet.png`` (the photo beside the avatar from the front, +-30 and +-60
degrees, mouth closed and open), ``motion.npy`` and (when a portrait was fitted) ``avatar.npz``, the
avatar for ``vasa3d speak --avatar``, are written to the output folder.
"""

from __future__ import annotations

import os
import pathlib
import shutil

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
        workdir: str | os.PathLike | None = None, progress: bool = True, face: int = 0,
        waveform: np.ndarray | None = None) -> dict:
    """Runs steps (1)-(5) (``text`` None: ``SENTENCE``; ``waveform`` (16 kHz) given: spoken instead
    of any text; ``portrait`` None: the astronaut, ``face``: which face of it by size; ``avatar``
    given: step (1) is skipped; ``workdir`` None: ``OUT/work``); returns the summary (paths, frames,
    fps, per-stage wall times)."""
    import time

    text = SENTENCE if text is None else text
    out = pathlib.Path(out_dir)
    generator = generator or load_default_model()
    summary: dict = {"text": text} if waveform is None else {"audio": "given"}
    if avatar is None:
        from vasa3d_jax.portrait import previews
        from vasa3d_jax.portrait.api import portrait_to_avatar

        result = portrait_to_avatar(astronaut() if portrait is None else portrait, preset,
                                    workdir if workdir is not None else out / "work", generator=generator,
                                    progress=progress, face=face)
        avatar = result.avatar
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.workdir / "avatar.npz", out / "avatar.npz")
        t0 = time.perf_counter()
        sheet = video.save_png(out / "portrait_sheet.png", previews.contact_sheet(avatar, result.anchor, size))
        summary.update(portrait_sheet=str(sheet), avatar=str(out / "avatar.npz"), reused_avatar=result.reused,
                       avatar_cache=str(result.workdir),
                       warnings=list(result.warnings),
                       stage_s={**{k: round(v, 2) for k, v in result.timings.items()},
                                "portrait_sheet": round(time.perf_counter() - t0, 2)})
    talker = Talker(avatar, generator, size=size)
    speech = talker.speak(synthesize(text) if waveform is None else waveform, camera_path=camera,
                          key=jax.random.key(seed))
    return {**summary, **save_speech(speech, out, "talking_turntable.mp4")}
