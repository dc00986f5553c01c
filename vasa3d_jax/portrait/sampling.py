"""Training latents and cameras for the synthesised frames of one portrait (portrait-notes.md §5.1, §8.5).

VASA-3D fits the Gaussian head to VASA-1 reenactments of the portrait driven by real talking motion
(paper-notes.md §1.3). Here the motion comes from what the project ships: the motion generator on
varied espeak-ng speech (several voices, variants, rates and pitches, ``motion.synthetic``'s
sentence bank), with blinks, gaze shifts and head turns laid over it by the motion corpus's own
generators (``motion.synthetic.blink_track`` / ``gaze_track``) and slow head sweeps (ours).

Frames are split in two (Portrait4D keeps half of its samples at the dataset's camera, [P4D]):

  (1) photo view  (fraction ``photo_view_fraction``): the photo's own camera and head pose,
      z_pose_i = compose(R_photo, dR_i), t_photo + dt_i, with varied expression z_dyn_i;
  (2) orbit views: the head near its canonical front (z_pose_i = the generated motion, translation
      kept at the photo's), the photo's camera rotated about the head pivot by
      (azimuth a_i, elevation e_i):  a_i = +-A u_i^p  (mirrored pairs, p > 1 puts more mass near
      the front), u_i stratified in (0, 1], e_i stratified in [-E, E] and shuffled;
  (3) back views (fraction ``back_view_fraction``, taken from the orbit share): as (2) with
      a_i = +-(A + (180 - A) u_i), u_i stratified. No view of the photo sees the back of the head,
      so these frames only pin it to what the synthesiser shows there (the hair shell's colour):
      without them the colour and deformation networks, shared by all Gaussians, extrapolate to
      coloured speckles behind the ears (seen on the astronaut's quick fit; ours).

The mouth opens as the speech asks whatever the photo shows: a closed-mouth photo's open frames show
the head model's own teeth and cavity (an earlier jaw moderation scaled AU25/AU26 by 0.6 for such
photos, and their avatars barely opened: issue 21).

Everything is a deterministic function of the seed (and of the speech that espeak-ng produces).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
from scipy.spatial.transform import Rotation

from vasa3d_jax.motion_space import MotionSpace
from vasa3d_jax.render.types import Camera

# espeak-ng voices x variants used for the training speech (motion.synthetic.VOICES / VARIANTS).
SPEECH_VOICES = ("en-us+f2", "en-gb-x-rp+m3", "en-us+m1", "en-gb-scotland+f4", "en-029+m5",
                 "en-us-nyc+f1")
SPEECH_RATES = (140, 165, 190, 210)  # words per minute (synthetic.RATE_RANGE is 130-210)


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How many training frames, from which motion, seen from where."""

    num_frames: int = 48  # synthesised frames (the photo itself is added by the fitting)
    photo_view_fraction: float = 0.5  # share of frames at the photo's camera and head pose [P4D]
    back_view_fraction: float = 0.125  # share of frames seen from beyond +-max_azimuth_deg, to 180 (ours)
    max_azimuth_deg: float = 50.0  # orbit views reach +-this (issue 15: at least +-45)
    max_elevation_deg: float = 20.0  # and +-this (issue 15: +-20)
    front_power: float = 1.5  # a = A u^p: p > 1 concentrates views near the front (portrait-notes §8.5)
    speech_clips: int = 3  # espeak-ng sentences spoken through the motion generator
    head_turn_rad: float = 0.25  # amplitude of the slow head sweeps laid over the generated pose
    seed: int = 0

    def __post_init__(self):
        if self.num_frames < 2:
            raise ValueError(f"num_frames={self.num_frames} must be >= 2")
        if not (0.0 <= self.photo_view_fraction and 0.0 <= self.back_view_fraction
                and self.photo_view_fraction + self.back_view_fraction <= 1.0):
            raise ValueError(f"photo_view_fraction={self.photo_view_fraction} and back_view_fraction="
                             f"{self.back_view_fraction} must be >= 0 with a sum <= 1")
        if self.max_azimuth_deg < 45.0 or self.max_elevation_deg < 0.0:
            raise ValueError("orbit views must reach at least +-45 degrees of azimuth (issue 15); got "
                             f"max_azimuth_deg={self.max_azimuth_deg}, max_elevation_deg={self.max_elevation_deg}")
        if self.speech_clips < 1:
            raise ValueError(f"speech_clips={self.speech_clips} must be >= 1")


@dataclasses.dataclass(frozen=True)
class TrainingViews:
    """The synthesised frames' motion and cameras (numpy, host).

    latents: (N, D) float32; viewmats: (N, 4, 4); K: (N, 3, 3); azimuth_deg, elevation_deg: (N,)
    relative to the photo's camera (0 at the photo view); photo_view: (N,) bool, frames of kind (1).
    """

    latents: np.ndarray
    viewmats: np.ndarray
    K: np.ndarray
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray
    photo_view: np.ndarray

    @property
    def num(self) -> int:
        return len(self.latents)

    def cameras(self, width: int, height: int) -> Camera:
        import jax.numpy as jnp
        return Camera(viewmat=jnp.asarray(self.viewmats), K=jnp.asarray(self.K), width=width, height=height)


# ---- motion -------------------------------------------------------------------------------------
def speech_motion(generator, config: SamplingConfig) -> list[np.ndarray]:
    """``config.speech_clips`` clips of generated talking motion, each (T_i, D), one voice/rate each."""
    from vasa3d_jax.motion import generate_from_audio
    from vasa3d_jax.motion import synthetic as syn

    sentences = syn.sentence_bank(config.speech_clips, seed=config.seed)
    rng = np.random.default_rng([config.seed, 1])
    clips = []
    for i, text in enumerate(sentences):
        voice = SPEECH_VOICES[(config.seed + i) % len(SPEECH_VOICES)]
        rate = int(SPEECH_RATES[rng.integers(len(SPEECH_RATES))])
        pitch = int(rng.integers(*syn.PITCH_RANGE))
        wav, _ = syn.synthesize(text, voice, rate, pitch)
        clips.append(np.asarray(generate_from_audio(generator, wav, key=jax.random.key(config.seed * 1000 + i)),
                                np.float32))
    return clips


def enrich_motion(motion: np.ndarray, space: MotionSpace, rng: np.random.Generator,
                  head_turn_rad: float) -> np.ndarray:
    """Adds the corpus's blinks and gaze shifts (``synthetic.blink_track`` / ``gaze_track`` on the
    100 Hz grid, activity = the clip's mouth opening) and a slow head sweep to a (T, D) clip."""
    from vasa3d_jax.motion import synthetic as syn

    x = np.array(motion, np.float32, copy=True)
    t = len(x)
    activity = np.repeat(np.clip(np.asarray(space.mouth_open(x)) * 3.0, 0.0, 1.0), syn.SUB)

    def frames(track):  # 100 Hz grid -> 25 fps frames (mean of each frame's 4 grid points)
        return np.asarray(track).reshape(t, syn.SUB, *np.shape(track)[1:]).mean(1)

    names = space.names
    if "AU43" in names:
        blink = frames(syn.blink_track(rng, activity, rng.uniform(15.0, 25.0)))
        x[:, space.index("AU43")] = np.maximum(x[:, space.index("AU43")], blink)
    if "gaze_yaw" in names:
        main = rng.uniform([-0.2, -0.12], [0.2, 0.12])
        gaze = frames(syn.gaze_track(rng, main, activity))
        x[:, space.index("gaze_yaw")] = gaze[:, 0]
        x[:, space.index("gaze_pitch")] = gaze[:, 1]
    # Head turns: one smooth sweep per clip (yaw), a smaller nod (pitch), random phase.
    u = np.arange(t) / max(t - 1, 1)
    phase = rng.uniform(0, 2 * np.pi, 2)
    rot = x[:, space.dyn_size:space.dyn_size + 3]
    rot[:, 1] += head_turn_rad * np.sin(2 * np.pi * u + phase[0])
    rot[:, 0] += 0.4 * head_turn_rad * np.sin(2 * np.pi * 1.5 * u + phase[1])
    x[:, space.dyn_size:space.dyn_size + 3] = rot
    return x


def pick_frames(clips: list[np.ndarray], count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` frames spread over all clips: every clip cut into equal strata, one frame per stratum."""
    pool = np.concatenate(clips)
    if count > len(pool):
        raise ValueError(f"asked for {count} training frames but the speech clips hold only {len(pool)}; "
                         "raise speech_clips")
    edges = np.linspace(0, len(pool), count + 1)
    idx = np.floor(edges[:-1] + rng.random(count) * np.diff(edges)).astype(int)
    return pool[np.minimum(idx, len(pool) - 1)]


# ---- cameras ------------------------------------------------------------------------------------
def orbit_angles(count: int, config: SamplingConfig, rng: np.random.Generator,
                 back: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(azimuth, elevation) degrees of ``count`` orbit views: mirrored azimuth pairs +-A u^p (``back``:
    +-(A + (180 - A) u)) with u stratified, elevations stratified over [-E, E] and shuffled."""
    if count == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    half = (count + 1) // 2
    u = (np.arange(half) + rng.uniform(0.25, 1.0, half)) / half  # stratified in (0, 1], reaches ~1
    a_max = config.max_azimuth_deg
    if back:
        a = a_max + (180.0 - a_max) * u
    else:
        u[-1] = 1.0  # the widest pair sits exactly at +-A
        a = a_max * u ** config.front_power
    az = np.stack([a, -a], 1).reshape(-1)[:count]
    el = np.linspace(-config.max_elevation_deg, config.max_elevation_deg, count)
    el = el[rng.permutation(count)]
    return az.astype(np.float32), el.astype(np.float32)


def orbit_viewmat(viewmat: np.ndarray, azimuth_deg: float, elevation_deg: float, pivot) -> np.ndarray:
    """The photo camera rotated about ``pivot`` so that it sees the head from (azimuth, elevation)
    degrees further round (``camera.orbit_camera``, the fitting's own novel-view formula)."""
    from vasa3d_jax.camera import orbit_camera

    cam = Camera(viewmat=np.asarray(viewmat, np.float32), K=np.eye(3, dtype=np.float32), width=1, height=1)
    view = orbit_camera(cam, math.radians(azimuth_deg), math.radians(elevation_deg), np.asarray(pivot, np.float32))
    return np.asarray(view.viewmat, np.float32)


def compose_pose(base_rotvec: np.ndarray, delta_rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle of R_base R_delta, row-wise: (3,), (N, 3) -> (N, 3)."""
    return (Rotation.from_rotvec(np.broadcast_to(base_rotvec, delta_rotvec.shape))
            * Rotation.from_rotvec(delta_rotvec)).as_rotvec().astype(np.float32)


def training_views(space: MotionSpace, photo_latent: np.ndarray, photo_camera: Camera, pivot,
                   config: SamplingConfig = SamplingConfig(), *, generator=None,
                   motion: list[np.ndarray] | None = None) -> TrainingViews:
    """The latents and cameras of the synthesised frames (equations (1)-(2) of the module docstring).

    photo_latent: (D,) the portrait's own latent (its pose included); photo_camera: unbatched; pivot:
    (3,) the head's canonical centre in world metres (orbits turn about pivot + the photo's translation).
    generator: a ``MotionGenerator`` in ``space`` (default: the shipped one); motion: ready clips
    [(T_i, D)] instead of generating speech (tests).
    """
    photo_latent = np.asarray(photo_latent, np.float32)
    space.check(photo_latent)
    rng = np.random.default_rng([config.seed, 2])
    if motion is None:
        if generator is None:
            from vasa3d_jax.motion import load_default_model
            generator = load_default_model()
        if generator.space != space:
            raise ValueError("the motion generator's space differs from the avatar's; use one trained in it")
        motion = speech_motion(generator, config)
    clips = [enrich_motion(c, space, rng, config.head_turn_rad) for c in motion]
    x = pick_frames(clips, config.num_frames, rng)

    n = config.num_frames
    n_photo = int(round(config.photo_view_fraction * n))
    d = space.dyn_size
    photo_rot, photo_t = photo_latent[d:d + 3], photo_latent[d + 3:d + 6]
    x[:, d + 3:d + 6] += photo_t  # every frame keeps the photo's head placement in its camera
    x[:n_photo, d:d + 3] = compose_pose(photo_rot, x[:n_photo, d:d + 3] * 0.5)  # (1): small motion about it

    az = np.zeros(n, np.float32)
    el = np.zeros(n, np.float32)
    n_back = 2 * int(round(config.back_view_fraction * n / 2))  # mirrored pairs
    n_orbit = n - n_photo - n_back
    az[n_photo:n_photo + n_orbit], el[n_photo:n_photo + n_orbit] = orbit_angles(n_orbit, config, rng)
    az[n_photo + n_orbit:], el[n_photo + n_orbit:] = orbit_angles(n_back, config, rng, back=True)
    base = np.asarray(photo_camera.viewmat, np.float32)
    centre = np.asarray(pivot, np.float32) + photo_t
    views = np.stack([base if i < n_photo else orbit_viewmat(base, az[i], el[i], centre) for i in range(n)])
    K = np.broadcast_to(np.asarray(photo_camera.K, np.float32), (n, 3, 3)).copy()
    return TrainingViews(latents=x.astype(np.float32), viewmats=views, K=K, azimuth_deg=az,
                         elevation_deg=el, photo_view=np.arange(n) < n_photo)
