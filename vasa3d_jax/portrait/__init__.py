"""Portrait -> avatar: the head-and-hair matte, the portrait model (the photo carried onto the fitted
head: texture, hair shell), the mesh-guided training-frame synthesiser and the initial Gaussian
avatar coloured from the photo.

    from vasa3d_jax.portrait import head_and_hair_matte, build_portrait_model, synthesize, initial_avatar
    matte = head_and_hair_matte(image, analysis)
    pm = build_portrait_model(image, analysis, motion_fit, matte)
    frames = synthesize(pm, latents, cameras)          # (N, H, W, 3)
    avatar = initial_avatar(pm)                        # pipeline.Avatar
"""

from vasa3d_jax.portrait.matte import Matte, head_and_hair_matte, matte_from_person, person_mask
from vasa3d_jax.portrait.model import (PortraitModel, build_from_fit, build_portrait_model,
                                       initial_avatar, model_vertices, resample)
from vasa3d_jax.portrait.synth import SynthFrames, Synthesizer, synthesize, synthesize_frames

__all__ = [
    "Matte", "head_and_hair_matte", "matte_from_person", "person_mask", "PortraitModel",
    "build_from_fit", "build_portrait_model", "initial_avatar", "model_vertices", "resample",
    "SynthFrames", "Synthesizer", "synthesize", "synthesize_frames",
]
