"""Speech -> motion -> Gaussian head -> frames: the Python API behind ``vasa3d speak`` and ``vasa3d demo``.

    from vasa3d_jax.pipeline import Talker
    talker = Talker.default()                               # shipped motion model + template head
    speech = talker.speak("speech.wav", camera_path="orbit", key=jax.random.key(0))
    video.write_mp4("talking.mp4", speech.frames, fps=speech.fps, audio=speech.audio)

    for frame in talker.stream(audio_chunks, camera_path="front"):   # online: frames as windows arrive
        ...

Per motion frame t with latent x_t = [z_dyn, z_pose] (``MotionSpace``), the avatar is deformed and
rendered at a fixed intersection capacity sized by probing (``avatar/render.py``, eqs. 1-4: no frame
is ever silently truncated), from camera t of a path (``camera.CameraPath``: front, orbit or a
static view). The pieces live in their own modules: ``camera`` (camera paths), ``avatar.io``
(``Avatar``, avatar files), ``avatar.template`` (the built-in template avatar and its colouring)
and ``avatar.render`` (the frame renderer and its capacity policy).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import queue
import threading
import time
from typing import Iterable, Iterator

import jax
import numpy as np

from vasa3d_jax.avatar.io import Avatar
from vasa3d_jax.avatar.render import FrameRenderer
from vasa3d_jax.avatar.template import template_avatar
from vasa3d_jax.camera import CameraPath, CameraSpec
from vasa3d_jax.constants import FPS, SAMPLE_RATE
from vasa3d_jax.motion import Controls, MotionGenerator, SamplerConfig, generate, load_default_model, stream

STREAM_ORBIT_PERIOD_S = 8.0  # streaming has no clip length: one turn every 8 s


@dataclasses.dataclass
class RenderStats:
    """What a rendering run measured (filled in while frames are produced)."""

    frames: int = 0  # frames rendered
    wall_s: float = 0.0  # seconds from the first request to the last frame (motion included)
    motion_s: float = 0.0  # seconds spent generating motion
    render_s: float = 0.0  # seconds spent deforming and rendering (compilation included)
    capacity: int = 0  # intersection capacity in use at the end
    resizes: int = 0  # times a frame overflowed and the capacity grew

    @property
    def fps(self) -> float:
        """Frames per second, end to end."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def summary(self) -> dict:
        return {"frames": self.frames, "fps": round(self.fps, 2), "wall_s": round(self.wall_s, 2),
                "motion_s": round(self.motion_s, 2), "render_s": round(self.render_s, 2),
                "capacity": self.capacity, "resizes": self.resizes}


def render_motion(avatar: Avatar, motion: np.ndarray, camera_path: CameraSpec | CameraPath = "front",
                  size: int = 256, *, background=(1.0, 1.0, 1.0), backend: str = "auto",
                  stats: RenderStats | None = None) -> Iterator[np.ndarray]:
    """Frames ``(H, W, 3)`` of ``avatar`` driven by ``motion (T, D)`` along ``camera_path``
    (``avatar/render.py`` eqs. 1-4, ``camera.py`` eqs. 1-2).

    A generator: frames are rendered as they are consumed. ``stats`` (optional) is filled in.
    """
    motion = np.asarray(motion, np.float32)
    if motion.ndim != 2 or motion.shape[0] == 0:
        raise ValueError(f"motion has shape {motion.shape}; expected (T > 0, D) latents, one row per frame")
    avatar.space.check(motion)
    path = CameraPath.parse(camera_path)
    renderer = FrameRenderer(avatar, size, background, backend)
    stats = stats if stats is not None else RenderStats()
    t0 = time.perf_counter()
    renderer.prepare(motion, path, len(motion))
    for images in render_blocks(renderer, motion, path, 0, len(motion)):
        stats.frames += len(images)
        stats.capacity, stats.resizes = renderer.capacity, renderer.resizes
        stats.render_s = stats.wall_s = time.perf_counter() - t0
        yield from images


def render_blocks(renderer: FrameRenderer, motion: np.ndarray, path: CameraPath, start: int,
                  total: int | None) -> Iterator[np.ndarray]:
    """Images ``(n, H, W, 3)`` of ``motion (T, D)`` (frames ``start``.. of the path), ``renderer.batch``
    frames per compiled call."""
    for s in range(0, len(motion), renderer.batch):
        x = motion[s:s + renderer.batch]
        views = np.stack([path.viewmat(start + s + i, total) for i in range(len(x))])
        yield renderer.render_batch(x, views)


# ---- speech to video ---------------------------------------------------------------------------
@dataclasses.dataclass
class Speech:
    """What ``Talker.speak`` returns: the motion (known at once) and the frames (rendered lazily)."""

    motion: np.ndarray  # (T, D) motion latents at ``fps``
    frames: Iterator[np.ndarray]  # T frames (H, W, 3), rendered as they are consumed
    audio: np.ndarray  # (n,) float32 16 kHz mono waveform the motion was made from
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

    def features(self, wav: np.ndarray) -> np.ndarray:
        """Speech features ``(T, F)`` at 25 fps from the generator's own encoder."""
        from vasa3d_jax.audio import speech_features

        return speech_features(wav, fps=FPS, encoder=self.generator.feature_encoder)

    def speak(self, audio, camera_path: CameraSpec | CameraPath = "front", controls: Controls | None = None,
              key: jax.Array | None = None) -> Speech:
        """Motion for all of ``audio`` (a file path, or a 16 kHz waveform), then frames lazily.

        Deterministic for a ``key`` (default ``jax.random.key(0)``).
        """
        path = CameraPath.parse(camera_path)  # a bad camera fails before any work
        wav = load_waveform(audio)
        stats = RenderStats()
        t0 = time.perf_counter()
        motion = generate(self.generator, self.features(wav), controls, key, self.sampler)
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

        Motion comes from ``motion.stream`` (a window of W frames per W / 25 s of audio, the last one
        shorter); an orbit without a period turns once every ``STREAM_ORBIT_PERIOD_S``. ``stats``
        (optional) is filled in; ``motion_out`` (optional list) receives each motion block ``(n, D)``.
        """
        from vasa3d_jax.audio import speech_features

        path = CameraPath.parse(camera_path)
        if path.kind == "orbit" and path.period is None:
            path = dataclasses.replace(path, period=STREAM_ORBIT_PERIOD_S * FPS)
        stats = stats if stats is not None else RenderStats()
        renderer = self.renderer(path)
        encoder = self.generator.feature_encoder

        def feature_fn(wav):
            return speech_features(wav, fps=FPS, encoder=encoder)

        blocks = stream(self.generator, (np.asarray(c, np.float32) for c in chunks), controls, key,
                        self.sampler, feature_fn=feature_fn)
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


def emotion_names(generator: MotionGenerator) -> tuple[str, ...]:
    """Names of the generator's emotion-offset entries: the synthetic corpus's (happy, surprised,
    sad; ``motion.synthetic.EMOTIONS``) for a generator of that size, else e0, e1, ..."""
    from vasa3d_jax.motion.synthetic import EMOTIONS

    size = generator.config.emotion_size
    return tuple(EMOTIONS) if size == len(EMOTIONS) else tuple(f"e{i}" for i in range(size))


def parse_controls(generator: MotionGenerator, gaze: str | None = None, distance: float | None = None,
                   emotion: str | None = None) -> Controls:
    """``Controls`` from the command line's words: gaze ``"YAW,PITCH"`` in degrees (yaw > 0 looks
    towards the head's left, +x; pitch > 0 up), distance in metres, emotion ``"happy=0.5,sad=0.2"``
    (names from ``emotion_names``; unnamed entries 0)."""
    import math

    gaze_rad = (0.0, 0.0)
    if gaze is not None:
        try:
            yaw, pitch = (float(v) for v in str(gaze).split(","))
        except ValueError:
            raise ValueError(f"--gaze {gaze!r}: give YAW,PITCH in degrees, e.g. --gaze 10,-5") from None
        if not (abs(yaw) <= 45 and abs(pitch) <= 45):
            raise ValueError(f"--gaze {gaze!r}: yaw and pitch must lie within +-45 degrees")
        gaze_rad = (math.radians(yaw), math.radians(pitch))
    if distance is not None and not 0.1 <= distance <= 3.0:
        raise ValueError(f"--distance {distance}: give the head-to-camera distance in metres (0.1 to 3)")
    emo = None
    if emotion:
        names = emotion_names(generator)
        emo = [0.0] * len(names)
        for item in str(emotion).split(","):
            name, _, value = item.partition("=")
            if name.strip() not in names or not value:
                raise ValueError(f"--emotion {emotion!r}: use NAME=VALUE pairs with names from {list(names)}, "
                                 "e.g. happy=0.5")
            emo[names.index(name.strip())] = float(value)
        emo = tuple(emo)
    return Controls(gaze=gaze_rad, distance=distance, emotion=emo)


def load_waveform(audio) -> np.ndarray:
    """A file path or a 16 kHz float waveform -> (n,) float32 16 kHz mono, with clear errors."""
    from vasa3d_jax.audio import load_audio

    if isinstance(audio, (str, os.PathLike)):
        if not pathlib.Path(audio).is_file():
            raise FileNotFoundError(f"audio file {str(audio)!r} not found; pass an existing speech file "
                                    "(wav, flac, mp3, m4a, ...)")
        wav = load_audio(audio)
    else:
        wav = load_audio(np.asarray(audio, np.float32), SAMPLE_RATE)
    if wav.shape[0] < SAMPLE_RATE // int(FPS):
        raise ValueError(f"the audio lasts {wav.shape[0] / SAMPLE_RATE:.3f} s; need at least one frame "
                         f"({1 / FPS:.2f} s) of speech")
    return wav


def save_speech(speech: Speech, out_dir: str | os.PathLike, video_name: str = "talking.mp4",
                sheet_frames: int = 12) -> dict:
    """Renders ``speech.frames`` into ``out_dir/video_name`` (H.264 with the speech as AAC), writes
    ``contact_sheet.png`` (``sheet_frames`` evenly spaced frames) and ``motion.npy``; returns a summary."""
    from vasa3d_jax import video

    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    total = len(speech.motion)
    picks = set(np.linspace(0, total - 1, min(sheet_frames, total)).round().astype(int).tolist())
    sheet: list[np.ndarray] = []

    def keep(frames):
        for t, image in enumerate(frames):
            if t in picks:
                sheet.append(image)
            yield image

    # Rendering runs in a worker thread while this one encodes: XLA and x264 both release the GIL.
    mp4 = video.write_mp4(out / video_name, keep(in_background(speech.frames)), fps=speech.fps,
                          audio=speech.audio, sample_rate=SAMPLE_RATE)
    png = video.save_png(out / "contact_sheet.png", video.contact_sheet(np.stack(sheet)))
    np.save(out / "motion.npy", speech.motion)
    return {"folder": str(out), "video": str(mp4), "contact_sheet": str(png), "motion": str(out / "motion.npy"),
            "audio_s": round(speech.audio.shape[0] / SAMPLE_RATE, 3) if speech.audio is not None else 0.0,
            **speech.stats.summary()}


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


def record_stream(talker: "Talker", chunks: Iterable[np.ndarray], path: str | os.PathLike,
                  camera_path: CameraSpec | CameraPath = "front", controls: Controls | None = None,
                  key: jax.Array | None = None, *, stats: RenderStats | None = None,
                  on_frame=None) -> dict:
    """Streams ``chunks`` (16 kHz waveform pieces) through ``talker.stream`` into the MP4 ``path``,
    frames and sound as they come (the sound track holds exactly the audio of the frames written).

    ``on_frame(t, image)`` (optional) sees each frame after it is written; if it (or anything)
    raises, or the chunks stop, the file is closed properly and plays with every frame so far.
    """
    from vasa3d_jax import video
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
