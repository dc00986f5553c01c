"""Talking-face video -> a motion training clip's arrays (``vasa3d encode --video clip.mp4 --out clip.npz``).

    frames ──analyze_faces (batches of BATCH)──► landmarks, iris, valid ──encode_motion──► x_i (video rate)
           ──interpolate missing frames, resample to 25 fps──► motion (T, D)   + audio at 16 kHz

Resampling (linear in time, per channel; the pose's axis-angle is interpolated componentwise, which
is accurate for the small rotation between neighbouring frames):

    (1) motion[j] = x(t_j),  t_j = j / 25 s,  j = 0 .. floor(25 · duration) − 1,

with x(t) the piecewise-linear interpolant through the valid frames at their presentation times
(held constant before the first and after the last valid frame). Frames where no face was found
are reported (count and times), never filled with zeros; a clip without any face is an error.

The clip's arrays follow ``vasa3d_jax/motion/data.py``: ``motion`` (T, D) float32 at 25 fps,
``audio`` (S,) float32 at 16 kHz when the video has a sound track, and ``distance`` (head-to-camera
distance, metres, the fitted camera's |c|). The face layer does not write clips (it sits below
``motion``); ``motion.data.write_clip(path, **encode_video(video)["clip"])`` does, as ``vasa3d encode``.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Iterator

import numpy as np

from vasa3d_jax.constants import FPS, SAMPLE_RATE
from vasa3d_jax.motion_space import MotionSpace

BATCH = 32  # frames per analyze_faces call (one compiled shape; the last batch is padded)


@dataclasses.dataclass(frozen=True)
class _Frames:
    """What the face analysis of a video produced (numpy, video rate)."""

    landmarks: np.ndarray  # (T, 468, 3)
    iris: np.ndarray  # (T, 2, 5, 2)
    valid: np.ndarray  # (T,) bool
    times: np.ndarray  # (T,) seconds
    image_size: tuple[int, int]  # (H, W)


def _decode_frames(path: pathlib.Path) -> tuple[Iterator[tuple[float, np.ndarray]], int, float]:
    """Video frames as (time in seconds, uint8 RGB (H, W, 3)); also the frame count (estimate) and rate."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise ValueError(f"{path} could not be opened as a video ({err}); pass an mp4/mov/avi/webm file") from None
    if not container.streams.video:
        container.close()
        raise ValueError(f"{path} has no video stream")
    stream = container.streams.video[0]
    rate = float(stream.average_rate or stream.guessed_rate or 0.0)
    if rate <= 0:
        container.close()
        raise ValueError(f"{path}: the video stream has no frame rate")
    count = int(stream.frames or 0)

    def frames():
        try:
            for i, frame in enumerate(container.decode(stream)):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else i / rate
                yield t, frame.to_ndarray(format="rgb24")
        except av.FFmpegError as err:
            raise ValueError(f"{path}: the video could not be decoded ({err})") from None
        finally:
            container.close()

    return frames(), count, rate


def analyze_video(path: str | pathlib.Path, *, backend: str = "flax", progress: bool = True) -> _Frames:
    """Landmarks and irises of every frame (the largest face per frame)."""
    from tqdm import tqdm

    from vasa3d_jax.face.pipeline import analyze_faces

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no video file at {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is an empty file (0 bytes)")
    frames, count, rate = _decode_frames(path)
    lmk, iris, valid, times = [], [], [], []
    size = None
    bar = tqdm(total=count or None, desc="faces", unit="frame", disable=not progress)

    def flush(batch):
        n = len(batch)
        stack = np.stack(batch + [batch[-1]] * (BATCH - n))
        res = analyze_faces(stack, backend=backend, name=str(path))
        lmk.append(np.asarray(res.landmarks)[:n])
        iris.append(np.asarray(res.iris)[:n])
        valid.append(np.asarray(res.valid, bool)[:n])
        bar.update(n)

    batch = []
    for t, image in frames:
        if size is None:
            size = image.shape[:2]
        elif image.shape[:2] != size:
            raise ValueError(f"{path}: frame size changes from {size} to {image.shape[:2]} at {t:.2f} s")
        times.append(t)
        batch.append(image)
        if len(batch) == BATCH:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    bar.close()
    if not times:
        raise ValueError(f"{path}: the video stream has no frames")
    times = np.asarray(times, np.float64)
    return _Frames(landmarks=np.concatenate(lmk), iris=np.concatenate(iris), valid=np.concatenate(valid),
                   times=times - times[0], image_size=tuple(size))


def resample(x: np.ndarray, times: np.ndarray, valid: np.ndarray, fps: float, duration: float) -> np.ndarray:
    """Eq. 1: (T, D) at ``times`` (only ``valid`` rows used) -> (floor(fps · duration), D)."""
    n_out = int(np.floor(fps * duration + 1e-6))
    if n_out < 1:
        raise ValueError(f"the video is too short ({duration:.3f} s) for one motion frame at {fps} fps")
    t_out = np.arange(n_out) / fps
    t_in, x_in = times[valid], x[valid]
    return np.stack([np.interp(t_out, t_in, x_in[:, k]) for k in range(x.shape[1])], 1).astype(np.float32)


def encode_video(path: str | pathlib.Path, *, head=None, space: MotionSpace | None = None,
                 smooth: float = 0.0, backend: str = "flax", progress: bool = True) -> dict:
    """Video -> motion clip (module docstring). Returns a summary dict (frames, missing frames and
    their times, fps, timings, fit errors) and, under "clip", the clip's arrays (``write_clip``'s
    keyword arguments)."""
    from tqdm import tqdm

    from vasa3d_jax.audio.io import load_audio
    from vasa3d_jax.face.encode import encode_motion
    from vasa3d_jax.head import template_head

    head = template_head() if head is None else head
    space = MotionSpace.builtin() if space is None else space
    path = pathlib.Path(path)
    t0 = time.perf_counter()
    frames = analyze_video(path, backend=backend, progress=progress)
    t_faces = time.perf_counter() - t0
    n = len(frames.times)
    missing = np.flatnonzero(~frames.valid)
    if len(missing) == n:
        raise ValueError(f"no face found in any of the {n} frames of {path}: nothing to encode")
    frame_dt = np.median(np.diff(frames.times)) if n > 1 else 1.0 / FPS
    duration = float(frames.times[-1] + frame_dt)

    t1 = time.perf_counter()
    bar = tqdm(total=n, desc="motion", unit="frame", disable=not progress)
    done = [0]

    def tick(k):
        bar.update(k - done[0])
        done[0] = k

    fit = encode_motion(frames, head, space, image_size=frames.image_size, smooth=smooth, progress=tick)
    bar.close()
    t_encode = time.perf_counter() - t1
    motion = resample(fit.latents, frames.times, frames.valid, space.fps, duration)
    clip = {"motion": motion, "distance": np.float32(np.linalg.norm(fit.viewmat[:3, 3]))}
    try:
        clip["audio"] = load_audio(path, max_seconds=None)
    except ValueError as err:
        if "no audio stream" not in str(err):
            raise
    rel = fit.relative_error()[fit.valid]
    return {
        "video": str(path),
        "video_frames": n, "video_fps": round(float(1.0 / frame_dt), 3), "image_size": list(frames.image_size),
        "motion_frames": int(motion.shape[0]), "motion_fps": space.fps,
        "missing_frames": int(len(missing)),
        "missing_times_s": [round(float(frames.times[i]), 3) for i in missing],
        "audio_seconds": round(len(clip["audio"]) / SAMPLE_RATE, 3) if "audio" in clip else None,
        "faces_seconds": round(t_faces, 2), "encode_seconds": round(t_encode, 2),
        "encode_frames_per_second": round(n / max(t_encode, 1e-9), 1),
        "reprojection_rel_iod_mean": round(float(rel.mean()), 4),
        "reprojection_rel_iod_max": round(float(rel.max()), 4),
        "focal_px": round(fit.focal, 1), "distance_m": round(float(clip["distance"]), 3),
        "clip": clip,
    }
