"""Motion generation: the trained generator, window-by-window sampling, batch and streaming APIs.

Audio is cut into consecutive windows of W frames (default 50 = 2 s at 25 fps). Window j is
sampled conditioned on its audio, the controls (gaze, distance, emotion) and, as context, the last
K frames (default 10) of window j−1's *generated* motion and its audio features (VASA-1 §3.2,
paper-notes.md §2.2); the first window has no context (trained for by context dropout 0.5). The
last window may be short: its missing audio frames are marked absent (trained for by random audio
truncation) and the extra frames are cut off. Window j uses the key ``fold_in(key, j)``, so batch
generation and streaming produce the same motion from the same features and key.

Each denoiser call evaluates, as one batch, the full condition and one copy per guided condition
with that condition dropped (eq. 6 of ``diffusion.py``): with the default guidance (audio 0.5,
gaze 1.0) every sampling step is one call at batch 3.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib
from typing import Callable, Iterable, Iterator, Literal

import flax
import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.motion import diffusion
from vasa3d_jax.constants import FPS, SAMPLE_RATE
from vasa3d_jax.motion.data import Stats, fit_length, speech_feature_fn
from vasa3d_jax.motion.dit import Conditions, DiTConfig, MotionDiT
from vasa3d_jax.motion_space import MotionSpace

SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640 audio samples per motion frame


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """How windows are sampled. The class defaults are VASA-1's; a saved generator carries its own
    recommended sampler (``MotionGenerator.sampler``, from its .json), used when none is passed."""

    method: Literal["ddim", "ddpm"] = "ddim"  # DDPM always runs every training step
    steps: int = 10  # DDIM steps per window (ignored by DDPM)
    eta: float = 0.0  # DDIM stochasticity (0: deterministic given the initial noise)
    audio_scale: float = 0.5  # λ_audio, VASA-1 §4.1
    gaze_scale: float = 1.0  # λ_gaze, VASA-1 §4.1


@dataclasses.dataclass(frozen=True)
class Controls:
    """User controls for a whole generation (VASA-1's default conditions when left as is).

    gaze: main gaze (θ, φ) in radians, default (0, 0) = looking at the camera; None = unspecified.
    distance: head-to-camera distance in metres; None = the training-set mean (VASA-1's default).
    emotion: (E,) emotion offset; None = no offset (VASA-1's default "empty" offset).
    """

    gaze: tuple[float, float] | None = (0.0, 0.0)
    distance: float | None = None
    emotion: tuple[float, ...] | None = None


def emotion_names(gen: "MotionGenerator") -> tuple[str, ...]:
    """Names of the generator's emotion-offset entries: the synthetic corpus's (happy, surprised,
    sad; ``motion.synthetic.EMOTIONS``) for a generator of that size, else e0, e1, ..."""
    from vasa3d_jax.motion.synthetic import EMOTIONS

    size = gen.config.emotion_size
    return tuple(EMOTIONS) if size == len(EMOTIONS) else tuple(f"e{i}" for i in range(size))


def parse_controls(gen: "MotionGenerator", gaze: str | None = None, distance: float | None = None,
                   emotion: str | None = None) -> Controls:
    """``Controls`` from the command line's words: gaze ``"YAW,PITCH"`` in degrees (yaw > 0 looks
    towards the head's left, +x; pitch > 0 up), distance in metres, emotion ``"happy=0.5,sad=0.2"``
    (names from ``emotion_names``; unnamed entries 0)."""
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
        names = emotion_names(gen)
        emo = [0.0] * len(names)
        for item in str(emotion).split(","):
            name, _, value = item.partition("=")
            if name.strip() not in names or not value:
                raise ValueError(f"--emotion {emotion!r}: use NAME=VALUE pairs with names from {list(names)}, "
                                 "e.g. happy=0.5")
            emo[names.index(name.strip())] = float(value)
        emo = tuple(emo)
    return Controls(gaze=gaze_rad, distance=distance, emotion=emo)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MotionGenerator:
    """A trained motion generator: denoiser parameters, normalisation and sizes.

    params: the ``MotionDiT`` variables. motion_mean/std: (D,); feature_mean/std: (F,);
    distance_mean/std: () — the training statistics (``data.Stats``); models work in normalised units.
    """

    params: dict
    motion_mean: jnp.ndarray
    motion_std: jnp.ndarray
    feature_mean: jnp.ndarray
    feature_std: jnp.ndarray
    distance_mean: jnp.ndarray
    distance_std: jnp.ndarray
    config: DiTConfig = dataclasses.field(metadata=dict(static=True))
    space: MotionSpace = dataclasses.field(metadata=dict(static=True))
    feature_encoder: str = dataclasses.field(default="whisper", metadata=dict(static=True))
    train_steps: int = dataclasses.field(default=diffusion.DEFAULT_TRAIN_STEPS, metadata=dict(static=True))
    sampler: SamplerConfig = dataclasses.field(default=SamplerConfig(), metadata=dict(static=True))

    @classmethod
    def create(cls, params, stats: Stats, config: DiTConfig, space: MotionSpace,
               feature_encoder: str, train_steps: int = diffusion.DEFAULT_TRAIN_STEPS,
               sampler: SamplerConfig = SamplerConfig()) -> "MotionGenerator":
        f = functools.partial(jnp.asarray, dtype=jnp.float32)
        return cls(params=params, motion_mean=f(stats.motion_mean), motion_std=f(stats.motion_std),
                   feature_mean=f(stats.feature_mean), feature_std=f(stats.feature_std),
                   distance_mean=f(stats.distance_mean), distance_std=f(stats.distance_std),
                   config=config, space=space, feature_encoder=feature_encoder, train_steps=train_steps,
                   sampler=sampler)

    @property
    def stats(self) -> Stats:
        n = functools.partial(np.asarray, dtype=np.float32)
        return Stats(n(self.motion_mean), n(self.motion_std), n(self.feature_mean), n(self.feature_std),
                     float(self.distance_mean), float(self.distance_std))


# ---- one window -------------------------------------------------------------------------------


def guidance_variants(cond: Conditions, sampler: SamplerConfig) -> tuple[Conditions, tuple[float, ...]]:
    """Stacks ``cond (batch 1)`` with one copy per guided condition, that condition dropped."""
    variants, scales = [cond], []
    if sampler.audio_scale:
        variants.append(cond.replace(audio_mask=jnp.zeros_like(cond.audio_mask)))
        scales.append(sampler.audio_scale)
    if sampler.gaze_scale:
        variants.append(cond.replace(gaze_mask=jnp.zeros_like(cond.gaze_mask)))
        scales.append(sampler.gaze_scale)
    stacked = jax.tree.map(lambda *xs: jnp.concatenate(xs), *variants)
    return stacked, tuple(scales)


@functools.partial(jax.jit, static_argnames=("sampler",))
def sample_window(gen: MotionGenerator, cond: Conditions, key: jax.Array,
                  sampler: SamplerConfig) -> jnp.ndarray:
    """One window ``(W, D)`` in normalised units, for ``cond`` of batch 1 (normalised units)."""
    model = MotionDiT(gen.config)
    schedule = diffusion.cosine_schedule(gen.train_steps)
    conds, scales = guidance_variants(cond, sampler)
    n = 1 + len(scales)

    def denoise(x, t):
        xb = jnp.broadcast_to(x, (n, *x.shape))
        pred, _ = model.apply(gen.params, xb, jnp.full((n,), t, jnp.int32), conds)
        return diffusion.guided_x0(pred, scales)

    shape = (gen.config.window, gen.config.motion_size)
    if sampler.method == "ddpm":
        return diffusion.sample_ddpm(schedule, denoise, shape, key)
    if sampler.method == "ddim":
        return diffusion.sample_ddim(schedule, denoise, shape, key, sampler.steps, sampler.eta)
    raise ValueError(f"sampler.method={sampler.method!r}; choose 'ddim' or 'ddpm'")


class WindowChain:
    """Carries the previous window's context from window to window (used by batch and streaming)."""

    def __init__(self, gen: MotionGenerator, controls: Controls, key: jax.Array, sampler: SamplerConfig):
        c = gen.config
        self.gen, self.key = gen, key
        self.index = 0
        self.prev_motion = jnp.zeros((1, c.context, c.motion_size))
        self.prev_audio = jnp.zeros((1, c.context, c.feature_size))
        self.has_prev = False
        use_gaze = controls.gaze is not None
        # Gaze guidance needs a gaze to contrast with; without one it is skipped, not emulated.
        self.sampler = sampler if use_gaze else dataclasses.replace(sampler, gaze_scale=0.0)
        gaze = controls.gaze if use_gaze else (0.0, 0.0)
        dist = float(gen.distance_mean) if controls.distance is None else controls.distance
        emo = np.zeros(c.emotion_size) if controls.emotion is None else np.asarray(controls.emotion)
        if emo.shape != (c.emotion_size,):
            raise ValueError(f"controls.emotion has shape {emo.shape}; this model takes ({c.emotion_size},)")
        self._static = dict(
            gaze=jnp.asarray([gaze], jnp.float32), gaze_mask=jnp.asarray([use_gaze]),
            distance=(jnp.asarray([dist], jnp.float32) - gen.distance_mean) / gen.distance_std,
            distance_mask=jnp.ones((1,), bool),
            emotion=jnp.asarray(emo[None], jnp.float32), emotion_mask=jnp.asarray([controls.emotion is not None]))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Motion ``(n, D)`` for the next ``n ≤ W`` frames of raw features ``(n, F)``."""
        gen, c = self.gen, self.gen.config
        n = features.shape[0]
        if not 1 <= n <= c.window or features.shape[1] != c.feature_size:
            raise ValueError(f"window features have shape {features.shape}; need (1..{c.window}, "
                             f"{c.feature_size}) from the {gen.feature_encoder!r} encoder")
        audio = (jnp.asarray(features, jnp.float32) - gen.feature_mean) / gen.feature_std
        audio = jnp.pad(audio, ((0, c.window - n), (0, 0)))[None]
        cond = Conditions(audio=audio, audio_mask=(jnp.arange(c.window) < n)[None],
                          prev_motion=self.prev_motion, prev_audio=self.prev_audio,
                          prev_mask=jnp.asarray([self.has_prev]), **self._static)
        x = sample_window(gen, cond, jax.random.fold_in(self.key, self.index), self.sampler)
        self.index += 1
        if n >= c.context:
            self.prev_motion, self.prev_audio = x[None, n - c.context:n], audio[:, n - c.context:n]
            self.has_prev = True
        return np.asarray(x[:n] * gen.motion_std + gen.motion_mean)


# ---- batch and streaming ----------------------------------------------------------------------


def generate(gen: MotionGenerator, features: np.ndarray, controls: Controls | None = None,
             key: jax.Array | None = None, sampler: SamplerConfig | None = None) -> np.ndarray:
    """Motion ``(T, D)`` for speech features ``(T, F)`` at 25 fps (``vasa3d_jax.audio.speech_features``
    with the generator's encoder). Deterministic for a key (default ``jax.random.key(0)``)."""
    features = np.asarray(features, np.float32)
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"features have shape {features.shape}; expected (T > 0, F)")
    step = WindowChain(gen, controls or Controls(), _key(key), sampler or gen.sampler)
    w = gen.config.window
    return np.concatenate([step(features[s:s + w]) for s in range(0, features.shape[0], w)])


def stream(gen: MotionGenerator, chunks: Iterable[np.ndarray], controls: Controls | None = None,
           key: jax.Array | None = None, sampler: SamplerConfig | None = None, *,
           feature_fn: Callable[[np.ndarray], np.ndarray] | None = None,
           left_context_s: float = 1.0) -> Iterator[np.ndarray]:
    """Streaming generation: yields blocks of motion frames ``(n, D)`` as soon as their audio is in.

    ``chunks`` are consecutive pieces of any length of either speech features ``(n, F)`` at 25 fps
    (``feature_fn=None``; then the output equals ``generate`` on their concatenation), or raw audio
    ``(s,)`` float32 16 kHz (``feature_fn(wav) -> (frames, F)`` turns audio into features, e.g.
    ``functools.partial(speech_features, encoder="whisper")``). For audio, each window's features are
    computed on its audio plus ``left_context_s`` seconds before it. A block is yielded per window
    of W frames, and a last, shorter block when the stream ends.
    """
    step = WindowChain(gen, controls or Controls(), _key(key), sampler or gen.sampler)
    w = gen.config.window
    if feature_fn is None:
        buf = np.zeros((0, gen.config.feature_size), np.float32)
        for chunk in chunks:
            buf = np.concatenate([buf, np.asarray(chunk, np.float32).reshape(-1, gen.config.feature_size)])
            while buf.shape[0] >= w:
                yield step(buf[:w])
                buf = buf[w:]
        if buf.shape[0]:
            yield step(buf)
        return

    left = int(round(left_context_s * FPS))
    audio = np.zeros(0, np.float32)  # samples from frame `origin` on
    origin, start = 0, 0  # first buffered frame; first frame of the next window
    need = w * SAMPLES_PER_FRAME

    def window_features(n_frames: int) -> np.ndarray:
        offset = start - origin
        seg = audio[: (offset + n_frames) * SAMPLES_PER_FRAME]
        feats = fit_length(np.asarray(feature_fn(seg), np.float32), offset + n_frames, "feature_fn output")
        return feats[offset:offset + n_frames]

    for chunk in chunks:
        audio = np.concatenate([audio, np.asarray(chunk, np.float32).reshape(-1)])
        while audio.shape[0] - (start - origin) * SAMPLES_PER_FRAME >= need:
            yield step(window_features(w))
            start += w
            drop = max(start - left - origin, 0)
            audio, origin = audio[drop * SAMPLES_PER_FRAME:], origin + drop
    rest = audio.shape[0] - (start - origin) * SAMPLES_PER_FRAME
    if rest > 0:
        yield step(window_features(max(1, -(-rest // SAMPLES_PER_FRAME))))


def generate_from_audio(gen: MotionGenerator, wav: np.ndarray, controls: Controls | None = None,
                        key: jax.Array | None = None, sampler: SamplerConfig | None = None) -> np.ndarray:
    """Speech -> features -> motion: ``(T, D)`` for a 16 kHz mono waveform, with the generator's own
    feature encoder (``data.speech_feature_fn``); the one such path (talker, export, portrait data)."""
    features = speech_feature_fn(gen.feature_encoder)(np.asarray(wav, np.float32))
    return generate(gen, features, controls, key, sampler)


def stream_from_audio(gen: MotionGenerator, chunks: Iterable[np.ndarray], controls: Controls | None = None,
                      key: jax.Array | None = None, sampler: SamplerConfig | None = None) -> Iterator[np.ndarray]:
    """``stream`` of consecutive 16 kHz waveform chunks, features from the generator's own encoder."""
    chunks = (np.asarray(c, np.float32) for c in chunks)
    return stream(gen, chunks, controls, key, sampler, feature_fn=speech_feature_fn(gen.feature_encoder))


def _key(key: jax.Array | None) -> jax.Array:
    return jax.random.key(0) if key is None else key


# ---- files ------------------------------------------------------------------------------------


def save_generator(gen: MotionGenerator, path: str | pathlib.Path, extra: dict | None = None) -> None:
    """Writes ``path.npz`` (parameters + statistics) and ``path.json`` (sizes, space, ``extra``)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = flax.traverse_util.flatten_dict(jax.device_get(gen.params), sep="/")
    arrays = {f"params/{k}": np.asarray(v) for k, v in flat.items()}
    arrays.update({k: np.asarray(v) for k, v in dataclasses.asdict(gen.stats).items()})
    np.savez(path.with_suffix(".npz"), **arrays)
    meta = {"config": gen.config.to_dict(), "feature_encoder": gen.feature_encoder,
            "train_steps": gen.train_steps, "sampler": dataclasses.asdict(gen.sampler),
            "space": gen.space.to_json(), **(extra or {})}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def load_generator(path: str | pathlib.Path) -> MotionGenerator:
    """Reads a generator written by :func:`save_generator` (``path`` with or without suffix)."""
    path = pathlib.Path(path)
    npz, meta_path = path.with_suffix(".npz"), path.with_suffix(".json")
    if not npz.exists() or not meta_path.exists():
        raise FileNotFoundError(f"motion generator files {npz} and {meta_path} not found; train one "
                                "with experiments/train_motion_synthetic.py")
    meta = json.loads(meta_path.read_text())
    with np.load(npz) as z:
        params = flax.traverse_util.unflatten_dict(
            {k[len("params/"):]: jnp.asarray(z[k]) for k in z.files if k.startswith("params/")}, sep="/")
        stats = Stats(**{k: np.asarray(z[k]) for k in ("motion_mean", "motion_std", "feature_mean",
                                                        "feature_std")},
                      distance_mean=float(z["distance_mean"]), distance_std=float(z["distance_std"]))
    return MotionGenerator.create(params, stats, DiTConfig(**meta["config"]), MotionSpace.from_json(meta["space"]),
                                  meta["feature_encoder"], meta["train_steps"],
                                  SamplerConfig(**meta.get("sampler", {})))
