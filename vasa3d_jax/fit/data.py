"""The fitting data: frames with known motion latents and cameras, and the per-step batch order.

The batch of step s is a pure function of (seed, s), so a resumed run sees exactly the batches an
uninterrupted run would, whatever the number of devices.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from vasa3d_jax.render.types import Camera


@dataclasses.dataclass(frozen=True)
class FitDataset:
    """N training frames of one identity (host memory, numpy).

    frames:   (N, H, W, 3) float32 RGB in [0, 1]
    latents:  (N, D) float32 motion latents x = [z_dyn, z_pose] (``MotionSpace``)
    viewmats: (N, 4, 4) float32 world -> camera (OpenCV axes)
    K:        (N, 3, 3) float32 intrinsics in pixels
    pivot:    (3,) float32, the head centre in world metres (novel views orbit about it)
    weights:  (N,) float32 or None, how often each frame is drawn relative to the others (None:
              uniformly; e.g. a portrait's photo counted as many synthetic frames)
    """

    frames: np.ndarray
    latents: np.ndarray
    viewmats: np.ndarray
    K: np.ndarray
    pivot: np.ndarray
    weights: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.frames)
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3:
            raise ValueError(f"frames must be (N, H, W, 3); got {self.frames.shape}")
        for name, tail in (("latents", None), ("viewmats", (4, 4)), ("K", (3, 3))):
            a = getattr(self, name)
            if len(a) != n or (tail is not None and a.shape[1:] != tail):
                raise ValueError(f"{name} must have {n} rows{'' if tail is None else f' of {tail}'}; "
                                 f"got {a.shape}")
        if self.latents.ndim != 2:
            raise ValueError(f"latents must be (N, D); got {self.latents.shape}")
        if np.shape(self.pivot) != (3,):
            raise ValueError(f"pivot must be (3,); got {np.shape(self.pivot)}")
        if n == 0:
            raise ValueError("the dataset has no frames")
        if self.weights is not None:
            w = np.asarray(self.weights)
            if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError(f"weights must be (N,) = ({n},) finite, >= 0, not all zero; got shape {w.shape}")

    @classmethod
    def fixed_camera(cls, frames, latents, viewmat, K, pivot) -> "FitDataset":
        """All frames seen by one camera (VASA-1's fixed 512x512 crop; paper-notes §1.3)."""
        frames = np.asarray(frames, np.float32)
        n = len(frames)
        return cls(frames=frames, latents=np.asarray(latents, np.float32),
                   viewmats=np.broadcast_to(np.asarray(viewmat, np.float32), (n, 4, 4)).copy(),
                   K=np.broadcast_to(np.asarray(K, np.float32), (n, 3, 3)).copy(),
                   pivot=np.asarray(pivot, np.float32))

    @property
    def num(self) -> int:
        return len(self.frames)

    @property
    def height(self) -> int:
        return self.frames.shape[1]

    @property
    def width(self) -> int:
        return self.frames.shape[2]

    def camera(self, idx) -> Camera:
        """The cameras of frames ``idx`` (an int or an index array) as a ``render.Camera``."""
        return Camera(viewmat=jax.numpy.asarray(self.viewmats[idx]), K=jax.numpy.asarray(self.K[idx]),
                      width=self.width, height=self.height)

    def batch(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        return {"frames": self.frames[idx], "latents": self.latents[idx],
                "viewmats": self.viewmats[idx], "K": self.K[idx]}


def batch_indices(seed: int, step: int, num: int, batch_size: int, weights=None) -> np.ndarray:
    """Frame indices of step ``step`` (batch_size,), without repeats while the data allow; with
    ``weights`` (N,), each slot draws frame i with probability w_i / sum w (with repeats)."""
    rng = np.random.default_rng([seed, step])
    if weights is not None:
        w = np.asarray(weights, np.float64)
        return rng.choice(num, size=batch_size, replace=True, p=w / w.sum())
    return rng.choice(num, size=batch_size, replace=batch_size > num)


def render_dataset(avatar, latents, viewmats, K, width: int, height: int, pivot,
                   background=(1.0, 1.0, 1.0), chunk: int = 8) -> FitDataset:
    """Frames of a known ``avatar.io.Avatar`` (its G″) for the given latents (N, D) and cameras
    (N, 4, 4), (N, 3, 3): a dataset with exact ground truth, rendered by ``avatar.render.render_frames``
    (capacity measured on the frames, never truncated)."""
    from vasa3d_jax.avatar.render import render_frames  # the renderer is needed only to synthesise data

    latents = np.asarray(latents, np.float32)
    viewmats = np.asarray(viewmats, np.float32)
    K = np.asarray(K, np.float32)
    camera = Camera(viewmat=jax.numpy.asarray(viewmats), K=jax.numpy.asarray(K), width=width, height=height)
    frames = render_frames(avatar, latents, camera, background, chunk=chunk)
    return FitDataset(frames=frames, latents=latents, viewmats=viewmats, K=K, pivot=np.asarray(pivot, np.float32))
