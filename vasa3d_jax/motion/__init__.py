"""Speech → motion: VASA-1's motion diffusion transformer, its sampler, training and shipped model.

    from vasa3d_jax.audio import load_audio, speech_features
    from vasa3d_jax.motion import load_default_model, generate, stream

    gen = load_default_model()                                   # trained on the synthetic corpus
    feats = speech_features(load_audio("speech.wav"), fps=25)    # (T, F)
    x = generate(gen, feats)                                     # (T, D) motion latents, 25 fps

Modules: ``dit`` (the denoiser), ``diffusion`` (schedule, DDPM/DDIM, guidance), ``sample`` (batch and
streaming generation), ``train`` (data-parallel training), ``data`` (clip format). The shipped model,
its recipe and its measured numbers: ``assets/README.md``.
"""

from __future__ import annotations

import pathlib

from vasa3d_jax.motion.dit import Conditions, DiTConfig, MotionDiT
from vasa3d_jax.motion.sample import (Controls, MotionGenerator, SamplerConfig, emotion_names, generate,
                                      generate_from_audio, load_generator, parse_controls, save_generator,
                                      stream, stream_from_audio)

DEFAULT_MODEL = pathlib.Path(__file__).parent / "assets" / "motion_dit"

__all__ = ["Conditions", "Controls", "DiTConfig", "MotionDiT", "MotionGenerator", "SamplerConfig",
           "emotion_names", "generate", "generate_from_audio", "load_default_model", "load_generator",
           "parse_controls", "save_generator", "stream", "stream_from_audio"]


def load_default_model() -> MotionGenerator:
    """The shipped generator (``assets/motion_dit.{npz,json}``; see ``assets/README.md``)."""
    return load_generator(DEFAULT_MODEL)
