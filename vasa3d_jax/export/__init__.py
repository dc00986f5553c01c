"""Export: the avatar as a standard 3DGS PLY, and the talking avatar as a web player.

    from vasa3d_jax import export
    export.export_ply(avatar, "out/me_web/avatar.ply")                 # neutral face, 3DGS layout
    export.export_web(avatar, "out/me_web", audio="speech.wav")        # rig + frames + audio + player
    export.serve("out/me_web")                                         # http://127.0.0.1:8000/

``ply`` writes and reads the layout of the original 3D Gaussian splatting code; ``web`` bakes the
rig and the per-frame motion (format: docs/web_format.md); ``player/`` is the browser player
(three.js from npm for the WebGL context and orbit controls, and a splat renderer of its own that
follows gsplat 1.5.3's projection and compositing, so the browser's frame matches ``render``).
"""

from __future__ import annotations

import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.constants import SAMPLE_RATE
from vasa3d_jax.export.ply import read_ply, write_ply
from vasa3d_jax.export.serve import serve
from vasa3d_jax.export.web import WebRig, bake, copy_player, decode_frame, read_web, write_web
from vasa3d_jax.render.types import Gaussians


def avatar_gaussians(avatar, x=None) -> Gaussians:
    """G'' (avatar.py eq. (10)) of the active Gaussians at motion latent ``x (D,)`` (default: the
    neutral face), as numpy arrays; inactive slots are left out."""
    x = np.asarray(avatar.space.neutral(1)[0] if x is None else x, np.float32)
    if x.shape != (avatar.space.size,):
        raise ValueError(f"x has shape {x.shape}; expected one motion latent ({avatar.space.size},)")
    from vasa3d_jax.avatar.render import final_gaussians  # jitted apply, shared with the renderer

    g = jax.tree.map(lambda a: a[0], final_gaussians(avatar.model, avatar.params, jnp.asarray(x)[None]))
    live = np.asarray(avatar.params["binding"].active)
    return jax.tree.map(lambda a: np.asarray(a)[live], g)


def export_ply(avatar, path: str | os.PathLike, x=None, sh_degree: int | None = 3) -> pathlib.Path:
    """Writes the avatar at latent ``x`` (default neutral) as a standard 3DGS PLY (``ply.write_ply``)."""
    return write_ply(avatar_gaussians(avatar, x), path, sh_degree=sh_degree)


def export_web(avatar, out_dir: str | os.PathLike, motion=None, audio=None, *, key=None, generator=None,
               size: int = 512, ply: bool = True, **bake_kw) -> dict:
    """The talking avatar as a web folder: ``rig.json``, ``rig.bin``, ``frames.bin``, ``audio.wav``
    (when there is audio), ``avatar.ply`` and the player ``index.html``.

    motion: (T, D) latents (e.g. from ``vasa3d speak``'s motion.npy); audio: a speech file or a 16 kHz
    waveform. With audio and no motion, the motion is generated from the audio (``generator``,
    default the shipped model; ``key`` default ``jax.random.key(0)``). One of the two is needed.
    Returns write_web's summary (sizes, kB per second).
    """
    from vasa3d_jax.audio import load_speech

    if motion is None and audio is None:
        raise ValueError("export_web needs motion (T, D) latents or audio (a speech file or waveform)")
    wav = None if audio is None else load_speech(audio)
    if motion is None:
        from vasa3d_jax.motion import generate_from_audio, load_default_model

        generator = generator or load_default_model()
        if generator.space != avatar.space:
            raise ValueError("the motion generator's space differs from the avatar's; pass motion or a "
                             "generator trained in the avatar's space")
        motion = generate_from_audio(generator, wav, None, key, generator.sampler)
    rig = bake(avatar, np.asarray(motion, np.float32), size=size, **bake_kw)
    summary = write_web(rig, out_dir, audio=wav, sample_rate=SAMPLE_RATE)
    if ply:
        summary["ply"] = str(export_ply(avatar, pathlib.Path(out_dir) / "avatar.ply"))
    if wav is not None:
        summary["audio_s"] = round(len(wav) / SAMPLE_RATE, 3)
    summary["index"] = str(pathlib.Path(out_dir) / "index.html")
    return summary


__all__ = ["avatar_gaussians", "export_ply", "export_web", "read_ply", "write_ply", "WebRig", "bake",
           "write_web", "read_web", "decode_frame", "copy_player", "serve"]
