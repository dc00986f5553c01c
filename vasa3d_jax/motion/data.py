"""Speech-to-motion clips on disk, their statistics, and the window sampler that feeds training.

Clip format (one ``.npz`` file per clip, all clips of a dataset in one folder)
-----------------------------------------------------------------------------
=================== =========== ==================================================================
key                 shape/dtype meaning
=================== =========== ==================================================================
``motion``          (T, D) f32  motion latents at 25 fps, one row per video frame, in the
                                ``MotionSpace`` channel order (built-in: 22 z_dyn + 6 z_pose)
``audio``           (S,) f32    speech, 16 kHz mono in [-1, 1], aligned so that sample 0 is the
                                start of frame 0 (frame i covers samples [640 i, 640 (i+1)))
``features``        (T, F) f32  or: speech features already at 25 fps (frame i ↔ motion row i)
``feature_encoder`` () str      name of the encoder that made ``features`` ("whisper", "logmel")
``gaze``            (2,) f32    optional: main gaze (θ, φ) of the clip, radians
``distance``        () f32      optional: head-to-camera distance, metres
``emotion``         (E,) f32    optional: emotion offset (e.g. clip mean of HSEmotion scores)
``text``            () str      optional: transcript
``fps``             () f32      frames per second of ``motion`` (25, ``constants.FPS``); a clip at
                                another rate is refused when read (absent in old clips: 25)
``sample_rate``     () i32      samples per second of ``audio`` (16000, ``constants.SAMPLE_RATE``)
=================== =========== ==================================================================

Other keys are metadata that readers ignore (the synthetic corpus keeps its voice, phonemes and
channel names). A clip needs ``motion`` and ``audio`` or ``features``. :func:`write_clip` writes
one (atomically, with ``fps`` and ``sample_rate``); :func:`load_clip` reads and checks one. Training
reads ``features``: run :func:`precompute_features` once on a folder (it adds ``features`` and
``feature_encoder`` to every clip that lacks them; computing Whisper features at every step would
be far too slow). To convert your own data, call :func:`write_clip` with the keys you have;
labels you do not have are simply left out (the model then learns that condition as absent,
exactly as in condition dropout).

Training windows (VASA-1 §3.2): a window is W consecutive frames; its context is the K frames
before it (absent for a window that starts the clip). Clips shorter than W are padded at the end
and the padded frames are excluded from the loss and marked as having no audio.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import pathlib
from typing import Any, Callable, Sequence

import numpy as np

from vasa3d_jax.constants import FPS, SAMPLE_RATE
from vasa3d_jax.motion_space import MotionSpace



@dataclasses.dataclass(frozen=True)
class Clip:
    """One clip in memory, read from a file or made by the synthetic corpus. motion (T, D); features
    (T, F) or None until computed; labels None when absent. A corpus clip also carries what made it
    (``source``: its ``synthetic.ClipSpec``) and its phoneme events (``phonemes``)."""

    name: str
    motion: np.ndarray
    features: np.ndarray | None = None
    gaze: np.ndarray | None = None
    distance: float | None = None
    emotion: np.ndarray | None = None
    audio: np.ndarray | None = None
    source: Any = None
    phonemes: tuple = ()

    @property
    def num_frames(self) -> int:
        return self.motion.shape[0]


def list_clips(folder: str | pathlib.Path) -> list[pathlib.Path]:
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"clip folder {folder} does not exist; make one with "
                                "`python experiments/make_motion_corpus.py` or convert your data "
                                "(format: vasa3d_jax/motion/data.py)")
    paths = sorted(folder.glob("*.npz"))
    if not paths:
        raise FileNotFoundError(f"no .npz clips in {folder} (format: vasa3d_jax/motion/data.py)")
    return paths


def is_held_out(path: str | pathlib.Path, fraction: float) -> bool:
    """Deterministic train/held-out split by a hash of the file name (stable as clips are added)."""
    digest = hashlib.sha256(pathlib.Path(path).name.encode()).digest()
    return int.from_bytes(digest[:4], "little") / 2**32 < fraction


def split_clips(paths: Sequence[pathlib.Path], held_out_fraction: float
                ) -> tuple[list[pathlib.Path], list[pathlib.Path]]:
    """``(train, held_out)`` by :func:`is_held_out`."""
    train = [p for p in paths if not is_held_out(p, held_out_fraction)]
    held = [p for p in paths if is_held_out(p, held_out_fraction)]
    return train, held


def write_clip(path: str | os.PathLike, motion: np.ndarray, *, audio: np.ndarray | None = None,
               features: np.ndarray | None = None, feature_encoder: str | None = None,
               gaze: np.ndarray | None = None, distance: float | None = None, emotion: np.ndarray | None = None,
               text: str | None = None, fps: float = FPS, sample_rate: int = SAMPLE_RATE,
               **metadata) -> pathlib.Path:
    """Writes one clip in the format above, atomically (a temporary file, then ``os.replace``: a
    crash never leaves a half-written clip); ``None`` labels are left out, ``metadata`` are further
    arrays kept as they are. Returns the path."""
    path = pathlib.Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: a clip file must end in .npz (numpy would add the suffix itself)")
    motion = np.asarray(motion, np.float32)
    if motion.ndim != 2 or motion.shape[0] == 0 or not np.all(np.isfinite(motion)):
        raise ValueError(f"{path}: motion must be finite (T > 0, D) latents; got shape {motion.shape}")
    if float(fps) != FPS:
        raise ValueError(f"{path}: motion at {float(fps)} fps; clips hold motion at {FPS} fps (resample first)")
    if int(sample_rate) != SAMPLE_RATE:
        raise ValueError(f"{path}: audio at {int(sample_rate)} Hz; clips hold {SAMPLE_RATE} Hz audio (load_audio resamples)")
    arrays = {"motion": motion, "fps": np.float32(fps), "sample_rate": np.int32(sample_rate)}
    optional = {"audio": (audio, np.float32), "features": (features, np.float32), "gaze": (gaze, np.float32),
                "distance": (distance, np.float32), "emotion": (emotion, np.float32)}
    arrays.update({k: np.asarray(v, t) for k, (v, t) in optional.items() if v is not None})
    arrays.update({k: np.str_(v) for k, v in (("feature_encoder", feature_encoder), ("text", text)) if v is not None})
    arrays.update({k: np.asarray(v) for k, v in metadata.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def load_clip(path: str | pathlib.Path, space: MotionSpace | None = None, *,
              require_features: bool = True, feature_encoder: str | None = None,
              with_audio: bool = False) -> Clip:
    """Reads one clip and checks it against the format above (and ``space`` when given)."""
    path = pathlib.Path(path)
    with np.load(path, allow_pickle=False) as z:
        if "motion" not in z:
            raise ValueError(f"{path}: no 'motion' array (format: vasa3d_jax/motion/data.py)")
        motion = np.asarray(z["motion"], np.float32)
        if motion.ndim != 2:
            raise ValueError(f"{path}: motion has shape {motion.shape}; expected (T, D)")
        if space is not None and motion.shape[1] != space.size:
            raise ValueError(f"{path}: motion has {motion.shape[1]} channels, the MotionSpace "
                             f"{space.size}; was this clip made for another space?")
        if not np.all(np.isfinite(motion)):
            raise ValueError(f"{path}: motion contains NaN or inf")
        if "fps" in z and float(z["fps"]) != FPS:
            raise ValueError(f"{path}: motion at {float(z['fps'])} fps; clips hold motion at {FPS} fps "
                             "(resample it and write the clip again with write_clip)")
        features = None
        if "features" in z:
            features = np.asarray(z["features"], np.float32)
            enc = str(z["feature_encoder"]) if "feature_encoder" in z else None
            if feature_encoder is not None and enc != feature_encoder:
                raise ValueError(f"{path}: features were made by encoder {enc!r}, not "
                                 f"{feature_encoder!r}; rerun precompute_features(..., "
                                 f"encoder={feature_encoder!r}, overwrite=True)")
            if features.ndim != 2 or features.shape[0] != motion.shape[0]:
                raise ValueError(f"{path}: features {features.shape} must be (T, F) with T = "
                                 f"{motion.shape[0]} (motion frames)")
        elif require_features:
            raise ValueError(f"{path}: no precomputed 'features'; run "
                             "vasa3d_jax.motion.data.precompute_features(folder) first")
        audio = np.asarray(z["audio"], np.float32) if with_audio and "audio" in z else None
        return Clip(
            name=path.stem, motion=motion, features=features, audio=audio,
            gaze=np.asarray(z["gaze"], np.float32).reshape(2) if "gaze" in z else None,
            distance=float(z["distance"]) if "distance" in z else None,
            emotion=np.asarray(z["emotion"], np.float32).reshape(-1) if "emotion" in z else None)


def precompute_features(folder: str | pathlib.Path, encoder: str = "whisper", *,
                        overwrite: bool = False, progress: bool = True) -> int:
    """Adds ``features`` (T, F) at 25 fps and ``feature_encoder`` to every clip of ``folder``.

    Features come from ``vasa3d_jax.audio.speech_features`` and are cut or edge-padded to the
    motion's T frames (the front-end may differ by a frame at the end). Returns the number of clips
    written. Clips that already have features from ``encoder`` are skipped unless ``overwrite``.
    """
    from tqdm import tqdm

    features_of = speech_feature_fn(encoder)
    written = 0
    for path in tqdm(list_clips(folder), desc=f"{encoder} features", disable=not progress):
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        if "features" in data and not overwrite and str(data.get("feature_encoder")) == encoder:
            continue
        if "audio" not in data:
            raise ValueError(f"{path}: no 'audio' to compute features from")
        feats = np.asarray(features_of(data["audio"]), np.float32)
        data["features"] = fit_length(feats, data["motion"].shape[0], path)
        data["feature_encoder"] = encoder
        write_clip(path, **data)
        written += 1
    return written


def speech_feature_fn(encoder: str) -> Callable[[np.ndarray], np.ndarray]:
    """``wav (16 kHz) -> features (T, F)`` at 25 fps, for ``stream(..., feature_fn=...)``."""
    from vasa3d_jax.audio import speech_features

    return functools.partial(speech_features, fps=FPS, encoder=encoder)


def fit_length(features: np.ndarray, num_frames: int, what: object = "features") -> np.ndarray:
    """Cuts or edge-pads ``features (T', F)`` to ``num_frames`` rows; more than 2 frames off is an
    alignment error."""
    if abs(features.shape[0] - num_frames) > 2:
        raise ValueError(f"{what}: {features.shape[0]} feature frames for {num_frames} motion frames; "
                         "audio and motion are not aligned (both must be at 25 fps from frame 0)")
    if features.shape[0] >= num_frames:
        return features[:num_frames]
    return np.pad(features, ((0, num_frames - features.shape[0]), (0, 0)), mode="edge")


@dataclasses.dataclass(frozen=True)
class Stats:
    """Per-channel normalisation, computed on the training clips and saved with the model.

    motion_mean, motion_std: (D,); feature_mean, feature_std: (F,); distance_mean/std: scalars
    (the default distance at inference is the training mean, as VASA-1).
    """

    motion_mean: np.ndarray
    motion_std: np.ndarray
    feature_mean: np.ndarray
    feature_std: np.ndarray
    distance_mean: float = 0.0
    distance_std: float = 1.0

    @classmethod
    def from_clips(cls, clips: Sequence[Clip]) -> "Stats":
        m = np.concatenate([c.motion for c in clips]).astype(np.float64)
        f = np.concatenate([c.features for c in clips]).astype(np.float64)
        dist = np.array([c.distance for c in clips if c.distance is not None], np.float64)
        return cls(motion_mean=m.mean(0).astype(np.float32), motion_std=_safe_std(m),
                   feature_mean=f.mean(0).astype(np.float32), feature_std=_safe_std(f),
                   distance_mean=float(dist.mean()) if dist.size else 0.0,
                   distance_std=float(max(dist.std(), 1e-3)) if dist.size else 1.0)

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Stats":
        arrays = {k: np.asarray(d[k], np.float32) for k in
                  ("motion_mean", "motion_std", "feature_mean", "feature_std")}
        return cls(**arrays, distance_mean=float(d["distance_mean"]), distance_std=float(d["distance_std"]))


def _safe_std(x: np.ndarray) -> np.ndarray:
    # A constant channel (e.g. an AU the corpus never uses) keeps unit scale instead of dividing by 0.
    std = x.std(0)
    return np.where(std > 1e-4, std, 1.0).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class WindowBatch:
    """A host batch of B training windows (raw units, before normalisation).

    motion (B, W, D); features (B, W, F); frame_valid (B, W) bool (False on padding past the clip);
    prev_motion (B, K, D); prev_features (B, K, F); has_prev (B,) bool;
    gaze (B, 2), has_gaze (B,); distance (B,), has_distance (B,); emotion (B, E), has_emotion (B,).
    """

    motion: np.ndarray
    features: np.ndarray
    frame_valid: np.ndarray
    prev_motion: np.ndarray
    prev_features: np.ndarray
    has_prev: np.ndarray
    gaze: np.ndarray
    has_gaze: np.ndarray
    distance: np.ndarray
    has_distance: np.ndarray
    emotion: np.ndarray
    has_emotion: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return dataclasses.asdict(self)


class WindowSampler:
    """Draws random training windows from clips; batch ``step`` depends only on (seed, step).

    Window starts are uniform over the clip; a quarter of the draws start at frame 0, so first
    windows (no context) are as common as in streaming inference.
    """

    FIRST_WINDOW_PROB = 0.25  # ours: share of windows drawn at the start of a clip

    def __init__(self, clips: Sequence[Clip], window: int, context: int, emotion_size: int, seed: int):
        if not clips:
            raise ValueError("WindowSampler needs at least one clip")
        self.clips, self.window, self.context, self.emotion_size = list(clips), window, context, emotion_size
        frames = np.array([c.num_frames for c in self.clips], np.float64)
        self._p = frames / frames.sum()  # sample clips by length, so every frame is equally likely
        self.seed = seed
        for c in self.clips:
            if c.emotion is not None and c.emotion.shape[0] != emotion_size:
                raise ValueError(f"clip {c.name}: emotion has {c.emotion.shape[0]} entries, the model "
                                 f"{emotion_size}")

    def batch(self, size: int, step: int) -> WindowBatch:
        """The batch for training step ``step``: a pure function of (seed, step), so a resumed run
        sees the same batches as an uninterrupted one."""
        rng = np.random.default_rng([self.seed, step])
        w = self.window
        rows = []
        for ci in rng.choice(len(self.clips), size=size, p=self._p):
            c = self.clips[ci]
            last = max(c.num_frames - w, 0)
            start = 0 if rng.random() < self.FIRST_WINDOW_PROB else int(rng.integers(0, last + 1))
            rows.append(self._window(c, start))
        return WindowBatch(*[np.stack(col) for col in zip(*rows)])

    def _window(self, c: Clip, start: int) -> tuple:
        w, k = self.window, self.context
        n = min(w, c.num_frames - start)
        pad = ((0, w - n), (0, 0))
        motion = np.pad(c.motion[start:start + n], pad, mode="edge")
        feats = np.pad(c.features[start:start + n], pad, mode="edge")
        valid = np.arange(w) < n
        has_prev = start >= k
        prev_m = c.motion[start - k:start] if has_prev else np.zeros((k, c.motion.shape[1]), np.float32)
        prev_f = c.features[start - k:start] if has_prev else np.zeros((k, c.features.shape[1]), np.float32)
        gaze = c.gaze if c.gaze is not None else np.zeros(2, np.float32)
        emo = c.emotion if c.emotion is not None else np.zeros(self.emotion_size, np.float32)
        return (motion, feats, valid, prev_m, prev_f, np.bool_(has_prev), gaze, np.bool_(c.gaze is not None),
                np.float32(c.distance or 0.0), np.bool_(c.distance is not None), emo,
                np.bool_(c.emotion is not None))
