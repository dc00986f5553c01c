"""A talking session: speech -> motion -> Gaussian head -> frames, and recording them. The Python API
behind ``vasa3d speak`` and ``vasa3d demo``; the top layer (no package imports it; the command line
and the demo do).

    from vasa3d_jax.session import Talker, save_speech
    talker = Talker.default()                               # shipped motion model + template head
    speech = talker.speak("speech.wav", camera_path="orbit", key=jax.random.key(0))
    save_speech(speech, "out/talk")                         # talking.mp4 (with sound), contact sheet, motion

    for frame in talker.stream(audio_chunks, camera_path="front"):   # online: frames as windows arrive
        ...

Per motion frame t with latent x_t = [z_dyn, z_pose] (``MotionSpace``), the avatar is deformed and
rendered at a fixed intersection capacity sized by probing (``avatar/render.py``, eqs. 1-4: no frame
is ever silently truncated), from camera t of a path (``camera.CameraPath``: front, orbit or a
static view). Speech becomes motion in one place (``motion.generate_from_audio`` for a whole clip,
``motion.stream_from_audio`` online); frames come from ``avatar.render.render_motion`` /
``render_blocks``; files are written by ``video`` (``write_video_folder``, ``Mp4Writer``).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Iterable, Iterator

import jax
import numpy as np

from vasa3d_jax import video
from vasa3d_jax.audio import load_speech
from vasa3d_jax.avatar.io import Avatar
from vasa3d_jax.avatar.render import FrameRenderer, RenderStats, render_blocks, render_motion
from vasa3d_jax.avatar.template import template_avatar
from vasa3d_jax.camera import CameraPath, CameraSpec
from vasa3d_jax.constants import FPS, SAMPLE_RATE
from vasa3d_jax.motion import (Controls, MotionGenerator, SamplerConfig, generate_from_audio, load_default_model,
                               stream_from_audio)

STREAM_ORBIT_PERIOD_S = 8.0  # streaming has no clip length: one turn every 8 s


@dataclasses.dataclass
class Speech:
    """What ``Talker.speak`` returns: the motion (known at once) and the frames (rendered lazily)."""

    motion: np.ndarray  # (T, D) motion latents at ``fps``
    frames: Iterator[np.ndarray]  # T frames (H, W, 3), rendered as they are consumed
    audio: np.ndarray | None  # (n,) float32 16 kHz mono waveform the motion was made from
    fps: float  # frames per second of motion and video
    stats: RenderStats  # timings, filled in while ``frames`` is consumed


class Talker:
    """An avatar, a motion generator and a renderer: speech in, talking-head frames out.

    avatar: a driven Gaussian head (``template_avatar()`` or a user's fitted one); generator: a
    ``MotionGenerator`` in the same motion space; size: square image side in pixels.
    """

    def __init__(self, avatar: Avatar, generator: MotionGenerator, *, size: int = 256,
                 background=(1.0, 1.0, 1.0), sampler: SamplerConfig | None = None, backend: str = "auto"):
        if generator.space != avatar.space:
            raise ValueError(f"the motion generator's space ({generator.space.size} channels) differs from the "
                             f"avatar's ({avatar.space.size}); use a generator trained in the avatar's space")
        self.avatar, self.generator, self.size = avatar, generator, size
        self.background, self.sampler, self.backend = background, sampler or generator.sampler, backend
        self._renderers: dict[CameraPath, FrameRenderer] = {}

    def renderer(self, path: CameraPath) -> FrameRenderer:
        """The talker's renderer for a camera path, kept with its measured capacity (eq. 3) and
        per-avatar constants, so a second stream starts without measuring again."""
        if path not in self._renderers:
            self._renderers[path] = FrameRenderer(self.avatar, self.size, self.background, self.backend)
        return self._renderers[path]

    @classmethod
    def default(cls, **kwargs) -> "Talker":
        """The shipped motion model driving the built-in template head (skin colouring)."""
        return cls(template_avatar(), load_default_model(), **kwargs)

    def speak(self, audio, camera_path: CameraSpec | CameraPath = "front", controls: Controls | None = None,
              key: jax.Array | None = None) -> Speech:
        """Motion for all of ``audio`` (a file path, or a 16 kHz waveform), then frames lazily.

        Deterministic for a ``key`` (default ``jax.random.key(0)``).
        """
        path = CameraPath.parse(camera_path)  # a bad camera fails before any work
        wav = load_speech(audio)
        stats = RenderStats()
        t0 = time.perf_counter()
        motion = generate_from_audio(self.generator, wav, controls, key, self.sampler)
        stats.motion_s = time.perf_counter() - t0

        def frames():
            inner = RenderStats()
            for image in render_motion(self.avatar, motion, path, self.size, background=self.background,
                                       backend=self.backend, stats=inner):
                stats.frames, stats.capacity, stats.resizes = inner.frames, inner.capacity, inner.resizes
                stats.render_s = inner.render_s
                stats.wall_s = time.perf_counter() - t0
                yield image

        return Speech(motion=motion, frames=frames(), audio=wav, fps=FPS, stats=stats)

    def stream(self, chunks: Iterable[np.ndarray], camera_path: CameraSpec | CameraPath = "front",
               controls: Controls | None = None, key: jax.Array | None = None, *,
               stats: RenderStats | None = None, motion_out: list | None = None) -> Iterator[np.ndarray]:
        """Online: consecutive 16 kHz waveform chunks in, frames out as each motion window arrives.

        Motion comes from ``motion.stream_from_audio`` (a window of W frames per W / 25 s of audio, the
        last one shorter); an orbit without a period turns once every ``STREAM_ORBIT_PERIOD_S``.
        ``stats`` (optional) is filled in; ``motion_out`` (optional list) receives each motion block ``(n, D)``.
        """
        path = CameraPath.parse(camera_path)
        if path.kind == "orbit" and path.period is None:
            path = dataclasses.replace(path, period=STREAM_ORBIT_PERIOD_S * FPS)
        stats = stats if stats is not None else RenderStats()
        renderer = self.renderer(path)
        blocks = stream_from_audio(self.generator, chunks, controls, key, self.sampler)
        t0 = time.perf_counter()
        t = 0
        while True:
            t_motion = time.perf_counter()
            block = next(blocks, None)
            stats.motion_s += time.perf_counter() - t_motion
            if block is None:
                return
            if motion_out is not None:
                motion_out.append(block)
            t_render = time.perf_counter()
            if renderer.capacity == 0:
                renderer.prepare(block, path, None)
            stats.render_s += time.perf_counter() - t_render
            images_of = render_blocks(renderer, block, path, t, None)
            while True:
                t_render = time.perf_counter()
                images = next(images_of, None)
                if images is None:
                    break
                t += len(images)
                stats.render_s += time.perf_counter() - t_render
                stats.frames, stats.capacity, stats.resizes = t, renderer.capacity, renderer.resizes
                stats.wall_s = time.perf_counter() - t0
                yield from images


# ---- recording ------------------------------------------------------------------------------------
def save_speech(speech: Speech, out_dir: str | os.PathLike, video_name: str = "talking.mp4",
                sheet_frames: int = 12) -> dict:
    """Renders ``speech.frames`` into ``out_dir/video_name`` (H.264 with the speech as AAC), writes
    ``contact_sheet.png`` and ``motion.npy`` (``video.write_video_folder``); returns a summary."""
    summary = video.write_video_folder(out_dir, speech.frames, speech.motion, audio=speech.audio, fps=speech.fps,
                                     video_name=video_name, sheet_frames=sheet_frames)
    return {**summary, **speech.stats.summary()}


def record_stream(talker: Talker, chunks: Iterable[np.ndarray], path: str | os.PathLike,
                  camera_path: CameraSpec | CameraPath = "front", controls: Controls | None = None,
                  key: jax.Array | None = None, *, stats: RenderStats | None = None,
                  on_frame=None) -> dict:
    """Streams ``chunks`` (16 kHz waveform pieces) through ``talker.stream`` into the MP4 ``path``,
    frames and sound as they come (the sound track holds exactly the audio of the frames written).

    ``on_frame(t, image)`` (optional) sees each frame after it is written; if it (or anything)
    raises, or the chunks stop, the file is closed properly and plays with every frame so far.
    """
    from vasa3d_jax.motion.sample import SAMPLES_PER_FRAME

    stats = stats if stats is not None else RenderStats()
    heard: list[np.ndarray] = []  # audio received and not yet written

    def tee(pieces):
        for piece in pieces:
            piece = np.asarray(piece, np.float32).reshape(-1)
            heard.append(piece)
            yield piece

    with video.Mp4Writer(path, fps=FPS, audio=True, sample_rate=SAMPLE_RATE) as mp4:
        for t, image in enumerate(talker.stream(tee(chunks), camera_path, controls, key, stats=stats)):
            mp4.write(image)
            want = mp4.frames * SAMPLES_PER_FRAME - mp4.samples  # the audio of the frames written
            buf = np.concatenate(heard) if heard else np.zeros(0, np.float32)
            mp4.write_audio(buf[:want])
            heard[:] = [buf[want:]]
            if on_frame is not None:
                on_frame(t, image)
    return {"video": str(mp4.path), "frames": mp4.frames, "audio_s": round(mp4.samples / SAMPLE_RATE, 3),
            **stats.summary()}


__all__ = ["Speech", "Talker", "save_speech", "record_stream", "STREAM_ORBIT_PERIOD_S"]
