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

import numpy as np

from vasa3d_jax.motion.dit import Conditions, DiTConfig, MotionDiT
from vasa3d_jax.motion.sample import (Controls, MotionGenerator, SamplerConfig, generate, load_generator,
                                      save_generator, stream)

DEFAULT_MODEL = pathlib.Path(__file__).parent / "assets" / "motion_dit"

__all__ = ["Conditions", "Controls", "DiTConfig", "MotionDiT", "MotionGenerator", "SamplerConfig",
           "generate", "generate_from_audio", "load_default_model", "load_generator", "save_generator",
           "stream"]


def load_default_model() -> MotionGenerator:
    """The shipped generator (``assets/motion_dit.{npz,json}``; see ``assets/README.md``)."""
    return load_generator(DEFAULT_MODEL)


def generate_from_audio(gen: MotionGenerator, wav: np.ndarray, controls: Controls | None = None,
                        key=None, sampler: SamplerConfig | None = None) -> np.ndarray:
    """Motion ``(T, D)`` for a 16 kHz mono waveform, with the generator's own feature encoder."""
    from vasa3d_jax.audio import speech_features  # imported late: the audio front-end is optional here

    feats = speech_features(np.asarray(wav, np.float32), fps=25, encoder=gen.feature_encoder)
    return generate(gen, feats, controls, key, sampler)
