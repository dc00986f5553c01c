"""Writing what a person would rather look at: MP4 videos (optionally with a sound track), PNG images
and contact sheets. Frames are float images in [0, 1], (T, H, W, 3), as everywhere in vasa3d-jax.

MP4 encoding uses PyAV, whose wheel bundles ffmpeg's libraries (no system ffmpeg needed).
"""

from __future__ import annotations

import math
import pathlib
from fractions import Fraction
from typing import Iterable

import numpy as np
from PIL import Image

from vasa3d_jax.constants import FPS, SAMPLE_RATE

__all__ = ["to_uint8", "save_png", "contact_sheet", "write_mp4"]


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


def write_mp4(path, frames: Iterable, fps: float = FPS, audio: np.ndarray | None = None,
              sample_rate: int = SAMPLE_RATE, crf: int = 18) -> pathlib.Path:
    """Encode frames ((H, W, 3) floats in [0, 1], any iterable) to an H.264 MP4 with PyAV.

    ``audio`` (a float waveform in [-1, 1] at ``sample_rate``) is muxed as an AAC sound track.
    Frames may come from a generator, so long videos never sit in memory. PyAV encodes in-process
    (no ffmpeg subprocess, so no fork inside a multithreaded JAX process).
    """
    import av  # deferred: only video writing needs it

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(frames)
    try:
        first = to_uint8(next(frames))
    except StopIteration:
        raise ValueError("write_mp4 got no frames") from None
    h, w, _ = first.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 (yuv420p) needs even frame sizes; got {w}x{h}")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf)}
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=sample_rate, layout="mono")
        frame = first
        while frame is not None:
            if frame.shape != first.shape:
                raise ValueError(f"frame shape {frame.shape} differs from the first frame's {first.shape}")
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            frame = next(frames, None)
            frame = None if frame is None else to_uint8(frame)
        container.mux(stream.encode(None))
        if astream is not None:
            samples = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)[None]
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="flt", layout="mono")
            chunk.sample_rate = sample_rate
            container.mux(astream.encode(chunk))
            container.mux(astream.encode(None))
    return path
