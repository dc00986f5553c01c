"""Video-driven reenactment: a face video's motion performed by an avatar, with the video's sound.

    from vasa3d_jax.drive import drive
    summary = drive(load_avatar("out/me/avatar.npz"), "clip.mp4", "out/me_drive", side_by_side=True)

VASA-3D drives its head by video through VASA-1's motion encoder; here the motion encoder is
``face.encode_motion`` (the head model fitted to MediaPipe's landmarks and irises, frame by frame):

    (1) x_s = encode_motion(analyze_faces(frames), avatar.head, avatar.space).latents[s]   at the clip's rate r
    (2) x(t) = (1 - a) x_floor(t r) + a x_ceil(t r),  a = frac(t r),   t = i / 25 s      resampled to 25 fps

(linear interpolation of the latents; rotations are small axis-angles, for which it is close to
slerp), then rendered like speech-driven motion (``avatar.render.render_motion``). The sound track is
the clip's own (16 kHz mono AAC; none when the clip has no audio stream). ``side_by_side`` puts
the driving frame (centre square crop, nearest frame in time) to the left of each rendered one.

Limit: the clip's frames are decoded and analysed in memory (a few hundred frames at 640x360 are
~200 MB); ``MAX_SECONDS`` guards against much longer clips.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
from PIL import Image

from vasa3d_jax.avatar.io import Avatar
from vasa3d_jax.camera import CameraPath, CameraSpec
from vasa3d_jax.constants import FPS

MAX_SECONDS = 60.0  # frames are held in memory for face analysis


def read_video(path: str | os.PathLike, max_seconds: float = MAX_SECONDS) -> tuple[np.ndarray, float]:
    """(frames (T, H, W, 3) uint8 RGB, frames per second) of a video file, with clear errors."""
    import av

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file {str(path)!r} not found; pass an existing clip (mp4, mov, ...)")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise ValueError(f"{path} could not be opened as a video ({err})") from None
    with container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream; drive needs a face video")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        if fps <= 0:
            raise ValueError(f"{path}: the video stream reports no frame rate")
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) > max_seconds * fps:
                raise ValueError(f"{path} lasts more than {max_seconds:g} s; drive holds every frame in memory, "
                                 "so cut the clip (e.g. ffmpeg -t 60) or raise max_seconds")
    if not frames:
        raise ValueError(f"{path} has no decodable video frames")
    return np.stack(frames), fps


def read_soundtrack(path: str | os.PathLike) -> np.ndarray | None:
    """The clip's sound as 16 kHz mono float32, or None when it has no audio stream."""
    import av

    from vasa3d_jax.audio import load_audio

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
    return load_audio(path, max_seconds=None)


def resample_motion(latents: np.ndarray, rate: float, fps: float = FPS) -> np.ndarray:
    """Eq. 2: latents ``(T, D)`` at ``rate`` Hz -> ``(ceil(T fps / rate), D)`` at ``fps``."""
    latents = np.asarray(latents, np.float32)
    n = max(1, int(np.ceil(len(latents) * fps / rate - 1e-9)))
    pos = np.minimum(np.arange(n) * rate / fps, len(latents) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(latents) - 1)
    a = (pos - lo)[:, None].astype(np.float32)
    return (1 - a) * latents[lo] + a * latents[hi]


def video_motion(frames: np.ndarray, rate: float, avatar: Avatar, **encode_kwargs) -> tuple[np.ndarray, object]:
    """Eqs. 1-2: (motion (T', D) at 25 fps in the avatar's space, the encoder's ``MotionFit``)."""
    from vasa3d_jax.face import analyze_faces, encode_motion

    analysis = analyze_faces(frames)
    if not np.any(analysis.valid):
        raise ValueError("no face was found in any frame of the driving video; use a clip with one visible face")
    fit = encode_motion(analysis, avatar.head, avatar.space, image_size=frames.shape[1:3], **encode_kwargs)
    motion = np.clip(resample_motion(fit.latents, rate), avatar.space.low, avatar.space.high)
    return motion.astype(np.float32), fit


def square(image: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop of an (H, W, 3) uint8 image, resized to size x size, as float in [0, 1]."""
    h, w, _ = image.shape
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(image[y:y + s, x:x + s]).resize((size, size), Image.BILINEAR)
    return np.asarray(crop, np.float32) / 255.0


def drive(avatar: Avatar, video_path: str | os.PathLike, out_dir: str | os.PathLike, *, size: int = 256,
          camera_path: CameraSpec | CameraPath = "front", side_by_side: bool = False,
          video_name: str = "driven.mp4", **encode_kwargs) -> dict:
    """Writes ``out_dir/video_name`` (the avatar performing the clip's motion, with its sound;
    ``side_by_side``: the driving video on the left), ``motion.npy`` (25 fps latents) and
    ``contact_sheet.png``; returns a summary."""
    from vasa3d_jax import video
    from vasa3d_jax.avatar.render import RenderStats, render_motion

    path = CameraPath.parse(camera_path)  # a bad camera fails before any work
    frames, rate = read_video(video_path)
    audio = read_soundtrack(video_path)
    motion, fit = video_motion(frames, rate, avatar, **encode_kwargs)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "motion.npy", motion)
    stats = RenderStats()
    rendered = render_motion(avatar, motion, path, size, stats=stats)

    def composed():
        for i, image in enumerate(rendered):
            if side_by_side:
                src = frames[min(int(round(i * rate / FPS)), len(frames) - 1)]
                image = np.concatenate([square(src, size), image], axis=1)
            yield image

    summary = video.write_video_folder(out, composed(), motion, audio=audio, fps=FPS, video_name=video_name)
    return {**summary, **stats.summary(), "video_frames": len(frames), "video_fps": round(rate, 3),
            "face_frames": int(np.sum(fit.valid)),
            "landmark_error": round(float(np.mean(fit.relative_error()[fit.valid])), 4)}
