"""Writing what a person would rather look at: MP4 videos (optionally with a sound track), PNG images
and contact sheets, and a rendered clip's folder (video with sound, contact sheet, motion). Frames
are float images in [0, 1], (T, H, W, 3), as everywhere in vasa3d-jax.

MP4 encoding uses PyAV, whose wheel bundles ffmpeg's libraries (no system ffmpeg needed).
"""

from __future__ import annotations

import math
import os
import pathlib
import queue
import threading
from fractions import Fraction
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from vasa3d_jax.constants import FPS, SAMPLE_RATE

__all__ = ["to_uint8", "save_png", "contact_sheet", "write_mp4", "Mp4Writer", "in_background",
           "write_video_folder"]


def to_uint8(image) -> np.ndarray:
    """Float image(s) in [0, 1] -> uint8, rounding to nearest. Non-finite pixels are an error."""
    image = np.asarray(image, np.float32)
    if not np.all(np.isfinite(image)):
        raise ValueError("image has NaN/inf pixels; refusing to write it (check the render that made it)")
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def save_png(path, image) -> pathlib.Path:
    """Save one (H, W, 3) float image in [0, 1] as PNG; returns the path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(image)).save(path)
    return path


def contact_sheet(frames, columns: int | None = None, pad: int = 2, background: float = 1.0) -> np.ndarray:
    """Tile (T, H, W, 3) frames into one (rows*H, columns*W, 3) image, row-major, with padding."""
    frames = np.asarray(frames, np.float32)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3); got {frames.shape}")
    t, h, w, _ = frames.shape
    columns = columns or math.ceil(math.sqrt(t))
    rows = math.ceil(t / columns)
    sheet = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), background, np.float32)
    for i, frame in enumerate(frames):
        r, c = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        sheet[y:y + h, x:x + w] = frame
    return sheet


class Mp4Writer:
    """An H.264 MP4 written frame by frame (and, optionally, an AAC sound track sample by sample).

        with Mp4Writer("out.mp4", audio=True) as mp4:
            mp4.write(frame)              # (H, W, 3) float in [0, 1] or uint8
            mp4.write_audio(samples)      # float waveform in [-1, 1] at sample_rate, any length

    Leaving the ``with`` block, normally or by an exception (a stream stopped early), flushes both
    encoders and writes the trailer, so the file always plays and holds every frame written so far.
    PyAV encodes in-process (no ffmpeg subprocess, so no fork inside a multithreaded JAX process).
    """

    def __init__(self, path, fps: float = FPS, audio: bool = False, sample_rate: int = SAMPLE_RATE,
                 crf: int = 18):
        import av  # deferred: only video writing needs it

        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps, self.crf, self.sample_rate = fps, crf, sample_rate
        self.frames = 0
        self.samples = 0
        self._container = av.open(str(self.path), "w")
        self._video = None  # created at the first frame, which fixes the size
        self._audio = self._container.add_stream("aac", rate=sample_rate, layout="mono") if audio else None

    def write(self, image) -> None:
        """Appends one frame, (H, W, 3) float in [0, 1] (``to_uint8``) or uint8."""
        import av

        frame = image if isinstance(image, np.ndarray) and image.dtype == np.uint8 else to_uint8(image)
        if self._video is None:
            h, w, _ = frame.shape
            if h % 2 or w % 2:
                raise ValueError(f"H.264 (yuv420p) needs even frame sizes; got {w}x{h}")
            self._video = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            self._video.width, self._video.height, self._video.pix_fmt = w, h, "yuv420p"
            self._video.options = {"crf": str(self.crf)}
        elif frame.shape != (self._video.height, self._video.width, 3):
            raise ValueError(f"frame shape {frame.shape} differs from the first frame's "
                             f"{(self._video.height, self._video.width, 3)}")
        self._container.mux(self._video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        self.frames += 1

    def write_audio(self, samples) -> None:
        """Appends mono samples (float in [-1, 1] at ``sample_rate``) to the sound track."""
        import av

        if self._audio is None:
            raise ValueError("this Mp4Writer has no sound track; open it with audio=True")
        samples = np.clip(np.asarray(samples, np.float32).reshape(-1), -1.0, 1.0)
        if not samples.size:
            return
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[None]), format="flt", layout="mono")
        chunk.sample_rate = self.sample_rate
        chunk.pts = self.samples
        self._container.mux(self._audio.encode(chunk))
        self.samples += samples.size

    def close(self) -> None:
        """Flushes the encoders and writes the file's trailer (idempotent)."""
        if self._container is None:
            return
        try:
            if self._video is not None:
                self._container.mux(self._video.encode(None))
            if self._audio is not None:
                self._container.mux(self._audio.encode(None))
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_mp4(path, frames: Iterable, fps: float = FPS, audio: np.ndarray | None = None,
              sample_rate: int = SAMPLE_RATE, crf: int = 18) -> pathlib.Path:
    """Encode frames ((H, W, 3) floats in [0, 1], any iterable) to an H.264 MP4 with PyAV.

    ``audio`` (a float waveform in [-1, 1] at ``sample_rate``) is muxed as an AAC sound track.
    Frames may come from a generator, so long videos never sit in memory (``Mp4Writer``).
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("write_mp4 got no frames")
    with Mp4Writer(path, fps, audio is not None, sample_rate, crf) as mp4:
        mp4.write(first)
        for frame in frames:
            mp4.write(frame)
        if audio is not None:
            mp4.write_audio(audio)
    return mp4.path


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def in_background(items: Iterable, depth: int = 16) -> Iterator:
    """The items of ``items``, produced by a worker thread up to ``depth`` ahead of the consumer, so
    producing (rendering: XLA releases the GIL) overlaps with consuming (encoding). An exception in
    the producer is raised in the consumer; closing the consumer early stops the producer."""
    done = object()
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as err:  # handed to the consumer, which raises it
            put(_Raised(err))

    worker = threading.Thread(target=work, name="vasa3d-render", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()


def write_video_folder(out_dir: str | os.PathLike, frames: Iterable, motion: np.ndarray, *,
                     audio: np.ndarray | None = None, fps: float = FPS, sample_rate: int = SAMPLE_RATE,
                     video_name: str = "talking.mp4", sheet_frames: int = 12) -> dict:
    """Renders ``frames`` (one per row of ``motion (T, D)``) into ``out_dir/video_name`` (H.264, with
    ``audio`` as AAC when given), writes ``contact_sheet.png`` (``sheet_frames`` evenly spaced frames)
    and ``motion.npy``; returns the paths and the sound's length in seconds.

    The frames are produced in a worker thread while this one encodes (``in_background``: XLA and
    x264 both release the GIL)."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total = len(motion)
    picks = set(np.linspace(0, total - 1, min(sheet_frames, total)).round().astype(int).tolist())
    sheet: list[np.ndarray] = []

    def keep(items):
        for t, image in enumerate(items):
            if t in picks:
                sheet.append(image)
            yield image

    mp4 = write_mp4(out / video_name, keep(in_background(frames)), fps=fps, audio=audio, sample_rate=sample_rate)
    png = save_png(out / "contact_sheet.png", contact_sheet(np.stack(sheet)))
    np.save(out / "motion.npy", motion)
    return {"folder": str(out), "video": str(mp4), "contact_sheet": str(png), "motion": str(out / "motion.npy"),
            "audio_s": round(audio.shape[0] / sample_rate, 3) if audio is not None else 0.0}
