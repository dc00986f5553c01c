"""Tiny learnable speech-to-motion clips for tests: the mouth follows a feature channel.

Features are smooth random signals (T, F). The target mouth opening (AU26 and AU25 of the built-in
space) is a sigmoid of feature 0, so a model that learned anything tracks it; head rotation is a
slow random walk; everything else stays zero. Gaze and distance labels are attached to some clips.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from vasa3d_jax.motion.data import Clip
from vasa3d_jax.motion_space import MotionSpace


def make_clip(rng: np.random.Generator, num_frames: int, feature_size: int, name: str = "clip",
              space: MotionSpace | None = None) -> Clip:
    space = space or MotionSpace.builtin()
    feats = gaussian_filter1d(rng.normal(size=(num_frames, feature_size)), 1.5, axis=0) * 3
    motion = np.zeros((num_frames, space.size), np.float32)
    mouth = 1 / (1 + np.exp(-3 * feats[:, 0]))
    motion[:, space.index("AU26")] = mouth
    motion[:, space.index("AU25")] = mouth
    motion[:, space.index("rot_y")] = 0.05 * np.cumsum(rng.normal(size=num_frames)) / np.sqrt(num_frames)
    labelled = rng.random() < 0.5
    return Clip(name=name, motion=motion, features=feats.astype(np.float32),
                gaze=rng.normal(size=2).astype(np.float32) * 0.1 if labelled else None,
                distance=float(0.5 + 0.1 * rng.random()) if labelled else None)


def make_clips(n: int, num_frames: int, feature_size: int, seed: int = 0) -> list[Clip]:
    rng = np.random.default_rng(seed)
    return [make_clip(rng, num_frames, feature_size, f"clip{i:03d}") for i in range(n)]
