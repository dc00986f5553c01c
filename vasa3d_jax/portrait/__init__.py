"""Portrait -> avatar: the head-and-hair matte, the portrait model (the photo carried onto the fitted
head: texture, hair shell), the mesh-guided training-frame synthesiser and the initial Gaussian
avatar coloured from the photo.

    from vasa3d_jax.portrait import head_and_hair_matte, build_portrait_model, synthesize, initial_avatar
    matte = head_and_hair_matte(image, analysis)
    pm = build_portrait_model(image, analysis, motion_fit, matte)
    frames = synthesize(pm, latents, cameras)          # (N, H, W, 3)
    avatar = initial_avatar(pm)                        # avatar.io.Avatar

    from vasa3d_jax.portrait import avatar_from_portrait   # the whole job, resumable
    avatar = avatar_from_portrait("me.jpg", preset="quick", workdir="work_dirs/me")

Modules: ``matte``, ``model``, ``texture``, ``hair``, ``synth`` (the portrait model and the
synthesiser); ``api`` (stages, presets, work directory), ``sampling`` (training latents and
cameras), ``checks`` (what a portrait must show), ``previews``, ``metrics``.
"""

from vasa3d_jax.portrait.matte import Matte, head_and_hair_matte, matte_from_person, person_mask
from vasa3d_jax.portrait.model import (PortraitModel, build_from_fit, build_portrait_model,
                                       initial_avatar, model_vertices, resample)
from vasa3d_jax.portrait.synth import SynthFrames, Synthesizer, synthesize, synthesize_frames



def avatar_from_portrait(*args, **kwargs):
    """``api.avatar_from_portrait`` (imported on first use: it pulls in the face analysis and the
    fit engine)."""
    from vasa3d_jax.portrait.api import avatar_from_portrait as run

    return run(*args, **kwargs)


__all__ = [
    "avatar_from_portrait", "Matte", "head_and_hair_matte", "matte_from_person", "person_mask", "PortraitModel",
    "build_from_fit", "build_portrait_model", "initial_avatar", "model_vertices", "resample",
    "SynthFrames", "Synthesizer", "synthesize", "synthesize_frames",
]
