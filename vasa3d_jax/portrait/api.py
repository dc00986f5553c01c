"""One portrait photograph -> a talking 3D Gaussian head (issue 15; paper-notes.md §1.3, portrait-notes.md §5, §8).

    from vasa3d_jax.portrait import avatar_from_portrait
    avatar = avatar_from_portrait("me.jpg", preset="quick", workdir="work_dirs/me")   # resumable

Stages (each timed and shown with a progress bar; ``workdir/timings.json``):

  1. analyse   ``face.load_image`` + ``face.analyze_faces`` (the largest face, or the N-th largest
               with ``face=N``; the count reported); framing (``frame``): a photo where that face is
               small (a half-body or standing photo: face box under 1/6 of the shorter side) or that
               is over 2048 px is cut to a square of ``FRAME_CONTEXT`` face sizes around it
               (resampled to at most 2048 px), so what follows sees a portrait (a portrait photo is
               used as it is);
               the input checks (``checks.py``: size, frame edge, turn, cover), ``encode_motion``
               (the portrait's latent x_photo, identity head, camera), ``head_and_hair_matte``;
  2. model     ``build_portrait_model`` (textured identity head + hair shell) and the training crop:
               a square around the head-and-hair matte, resized to the preset's side S, with
               K_crop = diag(s, s, 1) [[1, 0, -x0], [0, 1, -y0], [0, 0, 1]] K_photo;
  3. synthesise ``sampling.training_views`` (latents, cameras) -> ``synthesize`` (frames), cached in
               ``workdir/dataset.npz`` with the photo as the anchor frame (its own latent and camera):
               target_photo = m' I_photo + (1 - m') fill,  m' = m (1 - mouth)  (m the matte: the
               avatar learns to be clear outside the head and hair, VHAP's alpha supervision,
               portrait-notes §5.3; mouth: the photo's lips grown a little, where the synthesiser's
               frame at the photo's latent is the target, ``Anchor``);
  4. fit       the fit engine from ``initial_avatar`` (Gaussians coloured from the photo),
               resuming from ``workdir/fit/ckpt``; the anchor is drawn with probability
               w_a / (w_a + N_syn) per batch slot (``PortraitPreset.anchor_weight``);
  5. export    ``workdir/avatar.npz`` (loadable by ``vasa3d speak --avatar``) and
               ``workdir/anchor.npz`` (photo crop, matte, latent, camera: what previews and
               evaluation need). A rerun with the same photo and preset loads these and fits nothing.

The synthetic frames and the photo share one camera model; the photo's own view is where the texture
is exact, so the quick preset spends half its synthetic frames there (sampling.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from vasa3d_jax.avatar import AvatarConfig
from vasa3d_jax.camera import PIVOT, crop_intrinsics, project_points
from vasa3d_jax.fit import config as fit_config
from vasa3d_jax.fit import losses
from vasa3d_jax.portrait import checks
from vasa3d_jax.portrait.sampling import SamplingConfig, training_views
from vasa3d_jax.render.types import Camera

FORMAT_VERSION = 3  # bump when a stage's cached output changes meaning
CROP_MARGIN = 0.12  # the training crop adds this share of the matte's box on every side (ours)
BACKGROUND = (1.0, 1.0, 1.0)  # render and target background (the fit engine's default)
ANCHOR_MOUTH_MARGIN = 0.2  # the anchor's mouth mask reaches this share of the mouth width past the lips (ours)
# One photo: the LiteRT interpreter answers in seconds, where the Flax networks first compile for
# minutes on 2 cores (measured on the astronaut: 10 s vs 170 s); both run the same .tflite weights.
FACE_BACKEND = "litert"
# Framing (stage 1, ``frame``): a face box under this share of the photo's shorter side is framed (ours: the
# short-range detector's comfortable range starts at ~1/8; the astronaut's face is 95/512 ~ 1/5.4).
FRAME_BELOW = 1.0 / 6.0
FRAME_CONTEXT = 4.0  # the frame's side in face-box sides: head, hair and shoulders (ours)
MAX_PORTRAIT_SIDE = 2048  # face/pipeline.py MAX_ANALYSIS_SIDE: larger frames are resampled


@dataclasses.dataclass(frozen=True)
class PortraitPreset:
    """Everything that sets the cost of one portrait -> avatar run."""

    name: str
    size: int  # side of the square training images, pixels
    sampling: SamplingConfig  # how many synthetic frames, from which motion and views
    fit: fit_config.FitConfig  # the fit engine's configuration (losses, steps, densification)
    anchor_weight: float  # the photo counts as this many synthetic frames when batches are drawn
    preview_size: int = 192  # side of preview renders
    samples_per_pixel: float = 1.0  # surface samples (Gaussians) per training-crop pixel spacing

    def sample_spacing(self, image: np.ndarray, matte) -> float:
        """Photo pixels between surface samples so that they are ``samples_per_pixel`` per crop pixel."""
        side = crop_box(np.asarray(matte.head), CROP_MARGIN)[2]
        return max(1.0, side / self.size / self.samples_per_pixel)

    def describe(self) -> dict:
        lc = self.fit.losses
        return {"preset": self.name, "size": self.size, "frames": self.sampling.num_frames,
                "steps": self.fit.steps, "batch": self.fit.batch_size, "anchor_weight": self.anchor_weight,
                # SDS needs a denoiser (none ships) and the symmetry prior a period: listed only when used.
                "losses_on": [t for t in losses.TERMS if getattr(lc, t, 0.0) > 0 and t != "sds"
                              and (t != "symmetry" or self.fit.symmetry_every > 0)]}


def _quick() -> PortraitPreset:
    """2 CPU cores, ~5 min on an idle machine: 128 px, 48 synthetic frames + the photo, one frame per
    step, L1 + D-SSIM + the regularisers. Off (each costs a VGG16 pass or an extra render per step on
    CPU, portrait-notes §5.4): LPIPS, render consistency (LPIPS at a second view), adversarial, the
    mirrored-view prior and the CAS sharpening phase. One densification (step 240). On the astronaut,
    photo-view PSNR 26.2 dB at 240 steps and 0.75 samples per pixel, 26.9 at 480 steps, 27.2 at 480
    steps and 1 sample per pixel (this preset; fit ~3 min), 27.4 at 1.5 samples per pixel."""
    steps = 480
    loss = losses.LossConfig(l1=0.8, dssim=0.2, lpips=0.0, consistency=0.0, adversarial=0.0,
                             sharpening=0.0, symmetry=0.0, main_steps=steps, sharpen_steps=0)
    # Short-run rates (as experiments/fit_selfcheck.py's quick preset): the init is already close,
    # so colours and MLPs move faster than GaussianAvatars' 600K-step rates.
    lr = fit_config.LearningRates(color=1e-2, base_mlp=5e-4, residual_mlp=5e-4, position=1e-3,
                                  position_final=1e-4)
    fit = fit_config.FitConfig(
        batch_size=1, losses=loss, lr=lr,
        avatar=AvatarConfig(base_hidden=64, residual_width=32, residual_depth=1, bucket=2048),
        densify=fit_config.DensifySchedule(start=240, every=240, until=240, max_gaussians=20_000,
                                           opacity_reset_every=0),
        symmetry_every=0, log_every=20, save_every=60, preview_every=240)
    return PortraitPreset("quick", size=128, sampling=SamplingConfig(num_frames=48, speech_clips=3),
                          fit=fit, anchor_weight=12.0, samples_per_pixel=1.0)


def _full() -> PortraitPreset:
    """A GPU: 512 px, every loss of the paper (L1, D-SSIM, LPIPS, adversarial, render consistency,
    the mirrored-view prior and the CAS sharpening phase), the paper's densification interval."""
    loss = losses.LossConfig(main_steps=30_000, sharpen_steps=3_000)
    fit = fit_config.FitConfig(
        batch_size=4, losses=loss, avatar=AvatarConfig(),
        densify=fit_config.DensifySchedule(start=2_000, every=1_000, until=20_000),
        log_every=100, save_every=2_000, preview_every=2_000)
    return PortraitPreset("full", size=512, sampling=SamplingConfig(num_frames=2_000, speech_clips=60),
                          fit=fit, anchor_weight=200.0, preview_size=512)


def _tiny() -> PortraitPreset:
    """Tests only: 48 px, a handful of steps."""
    loss = losses.LossConfig(l1=0.8, dssim=0.2, lpips=0.0, consistency=0.0, adversarial=0.0,
                             sharpening=0.0, symmetry=0.0, main_steps=6, sharpen_steps=0)
    fit = fit_config.FitConfig(
        batch_size=1, losses=loss,
        avatar=AvatarConfig(base_hidden=16, residual_width=8, residual_depth=1, bucket=1024),
        densify=fit_config.DensifySchedule(start=4, every=4, until=4, opacity_reset_every=0),
        symmetry_every=0, log_every=2, save_every=3, preview_every=100)
    return PortraitPreset("tiny", size=48, sampling=SamplingConfig(num_frames=6, speech_clips=1),
                          fit=fit, anchor_weight=2.0, preview_size=48)


PRESETS = {"quick": _quick, "full": _full, "tiny": _tiny}


def get_preset(preset: str | PortraitPreset) -> PortraitPreset:
    if isinstance(preset, PortraitPreset):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; use one of {sorted(PRESETS)}")
    return PRESETS[preset]()


# ---- results ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Anchor:
    """The photo as a training frame: crop (S, S, 3) in [0, 1], matte (S, S) in [0, 1], its latent (D,),
    its camera (viewmat (4, 4), K (3, 3) for the S x S crop), the head pivot (3,), ``fill``
    (S, S, 3): what the target shows outside the matte (the synthesiser's frame at the photo view,
    so the neck under a collar or a hair-shell overshoot agrees with every other training frame;
    the background where the head model does not reach), and ``mouth`` (S, S) in [0, 1]: where the
    target shows ``fill`` inside the matte too (``anchor_mouth_mask``).

    Why the mouth: the photo's lips sit where its own expression puts them, which the latent
    reproduces only approximately (a grin wider than AU12 = 1); fitted to the photo there, the
    avatar's colour and deformation networks learned the photo's mouth at its latent (teeth painted
    on the lips, tinted teeth on every open mouth: issue 21). The synthesiser's frame at the photo's
    latent has the photo's lip and teeth colours on the head's own lips and teeth (the texture is
    registered on the photo's landmarks, model.py eq. 4), so the mouth is supervised consistently."""

    image: np.ndarray
    matte: np.ndarray
    latent: np.ndarray
    viewmat: np.ndarray
    K: np.ndarray
    pivot: np.ndarray
    fill: np.ndarray
    mouth: np.ndarray

    @property
    def size(self) -> int:
        return self.image.shape[0]

    @property
    def target(self) -> np.ndarray:
        """The photo inside the matte but off the mouth, ``fill`` elsewhere (what the avatar is fitted to)."""
        m = (self.matte * (1.0 - self.mouth))[..., None]
        return (m * self.image + (1.0 - m) * self.fill).astype(np.float32)

    def camera(self) -> Camera:
        return Camera(viewmat=jnp.asarray(self.viewmat), K=jnp.asarray(self.K), width=self.size, height=self.size)

    def save(self, path: pathlib.Path) -> None:
        np.savez(path, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    @classmethod
    def load(cls, path: pathlib.Path) -> "Anchor":
        with np.load(path) as z:
            fields = {f.name: z[f.name] for f in dataclasses.fields(cls) if f.name in z.files}
        fields.setdefault("fill", np.broadcast_to(np.asarray(BACKGROUND, np.float32), fields["image"].shape).copy())
        fields.setdefault("mouth", np.zeros(fields["image"].shape[:2], np.float32))
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class PortraitResult:
    """What ``portrait_to_avatar`` returns: the avatar, the anchor frame, timings and findings."""

    avatar: Any  # the Avatar (model + params) ready for Talker / vasa3d speak
    anchor: Anchor
    timings: dict  # stage -> wall seconds (this run; cached stages take ~0)
    warnings: tuple[str, ...]  # what the input checks say will be poor
    faces_found: int
    fit_steps: int
    skipped_steps: int  # fit steps not applied because their gradients were not finite
    workdir: pathlib.Path
    reused: bool  # True when the avatar came from the work directory without fitting
    model: Any = None  # the PortraitModel of this run (None when the result was reused)


# ---- the pipeline -------------------------------------------------------------------------------
def avatar_from_portrait(portrait, preset: str | PortraitPreset = "quick",
                         workdir: str | os.PathLike | None = None, **kwargs):
    """A talking Gaussian head from one portrait (a path or an (H, W, 3) image). Resumable: stages
    are cached in ``workdir`` (default ``work_dirs/<file stem or image hash>``) and an interrupted fit
    resumes from its checkpoint; rerunning returns the same avatar. Keyword arguments go to
    ``portrait_to_avatar``."""
    return portrait_to_avatar(portrait, preset, workdir, **kwargs).avatar


def portrait_to_avatar(portrait, preset: str | PortraitPreset = "quick",
                       workdir: str | os.PathLike | None = None, *, synthesizer=None, generator=None,
                       progress: bool = True, stop_after: int | None = None, face: int = 0) -> PortraitResult:
    """``avatar_from_portrait`` with everything it found: the anchor frame, timings, warnings.

    face: which face of a photo with several, by size (0: the largest, 1: the next, ...).
    synthesizer: a ``portrait.synth.Synthesizer`` (default: the built-in mesh-guided one); generator:
    the motion generator (default: the shipped one); stop_after: end the fit after this many steps
    (as an interruption would; a rerun resumes).
    """
    from vasa3d_jax.face import as_rgb, load_image

    preset = get_preset(preset)
    image = load_image(portrait) if isinstance(portrait, (str, os.PathLike)) else as_rgb(portrait)
    digest = _digest(image, preset, face)
    workdir = pathlib.Path(workdir) if workdir is not None else pathlib.Path(
        "work_dirs") / (pathlib.Path(portrait).stem if isinstance(portrait, (str, os.PathLike)) else digest[:12])
    workdir.mkdir(parents=True, exist_ok=True)
    _claim(workdir, digest, preset)
    timings: dict[str, float] = {}
    stages = tqdm(total=5, desc="portrait -> avatar", unit="stage", disable=not progress)

    def stage(name: str):
        return _Stage(name, timings, stages)

    cached = _load_result(workdir)
    if cached is not None:
        avatar, anchor, info = cached
        stages.update(5)
        stages.close()
        return PortraitResult(avatar=avatar, anchor=anchor, timings={"load": info.get("load_s", 0.0)},
                              warnings=tuple(info["warnings"]), faces_found=info["faces_found"],
                              fit_steps=info["fit_steps"], skipped_steps=info["skipped_steps"],
                              workdir=workdir, reused=True)

    try:  # the bar is closed on errors and Ctrl-C too, so that their one line starts a line
        with stage("analyse"):
            found = analyse(image, face)
            image = image if found.image is None else found.image
        with stage("model"):
            model, anchor = build_model(image, found, preset)
        with stage("synthesise"):
            dataset, anchor = synthesise(model, anchor, found, preset, workdir, synthesizer, generator)
        with stage("fit"):
            fitted = fit_avatar(model, found, dataset, anchor, preset, workdir, progress, stop_after)
        complete = fitted.steps >= preset.fit.steps
        if not complete and fitted.steps < min(stop_after or preset.fit.steps, preset.fit.steps):
            # The fit caught Ctrl-C / SIGTERM (ckpt.PreemptionGuard), saved its checkpoint and
            # stopped: the caller is interrupted as it asked; a rerun resumes from that checkpoint.
            raise KeyboardInterrupt
        with stage("export"):
            avatar = fitted.avatar
            if complete:
                _save_result(workdir, avatar, anchor, {
                    "warnings": list(found.warnings), "faces_found": found.faces_found,
                    "fit_steps": fitted.steps, "skipped_steps": fitted.skipped})
    finally:
        stages.close()
    _log_timings(workdir, timings)
    return PortraitResult(avatar=avatar, anchor=anchor, timings=timings, warnings=tuple(found.warnings),
                          faces_found=found.faces_found, fit_steps=fitted.steps,
                          skipped_steps=fitted.skipped, workdir=workdir, reused=False, model=model)


@dataclasses.dataclass(frozen=True)
class Found:
    """Stage 1's output: the analysis of the chosen face, its motion fit, matte and findings, and
    the image they refer to (the photo, or the frame cut around a small face; None: the photo)."""

    analysis: Any
    motion_fit: Any
    matte: Any
    faces_found: int
    warnings: tuple[str, ...]
    image: Any = None


def _faces(image: np.ndarray) -> list:
    from vasa3d_jax.face import analyze_faces

    with warnings.catch_warnings():  # the count and confidence are reported by checks.py instead
        warnings.simplefilter("ignore")
        return analyze_faces(image, backend=FACE_BACKEND)


def frame(image: np.ndarray, face: int = 0):
    """Framing -> (the photo, or the square around face ``face`` (by size, 0 the largest) when the
    photo is much larger than the face (module docstring); the faces found in it; the chosen one)."""
    faces = _faces(image)
    chosen = checks.choose_face(faces, face)
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in np.asarray(chosen.box))
    side = max(x1 - x0, y1 - y0)
    if side >= FRAME_BELOW * min(h, w) and max(h, w) <= MAX_PORTRAIT_SIDE:
        return image, faces, chosen
    frame_side = FRAME_CONTEXT * side
    left, top = (x0 + x1 - frame_side) / 2, (y0 + y1 - frame_side) / 2
    # Read only the frame's pixels (plus a margin for the anti-alias filter), never the whole photo.
    pad = int(frame_side / MAX_PORTRAIT_SIDE) * 2 + 2
    cx0, cy0 = max(0, int(left) - pad), max(0, int(top) - pad)
    cx1, cy1 = min(w, int(np.ceil(left + frame_side)) + pad), min(h, int(np.ceil(top + frame_side)) + pad)
    size = int(min(round(frame_side), MAX_PORTRAIT_SIDE))
    framed = crop_resize(image[cy0:cy1, cx0:cx1], (left - cx0, top - cy0, frame_side), size)
    faces = _faces(framed)
    # The chosen face is the one at the frame's centre (a neighbour may be larger in the frame).
    h, w = framed.shape[:2]
    centre = lambda f: float(np.hypot((f.box[0] + f.box[2]) / 2 - w / 2, (f.box[1] + f.box[3]) / 2 - h / 2))
    return framed, faces, min(faces, key=centre)


def analyse(image: np.ndarray, face: int = 0) -> Found:
    """Framing (``frame``), face analysis, input checks, the motion encoder and the head-and-hair
    matte (stage 1); face: which face of the photo by size (0: the largest)."""
    from vasa3d_jax.portrait.matte import head_and_hair_matte

    image, faces, analysis = frame(image, face)
    face = checks.face_measurements(faces, image, analysis)
    notes = checks.check_portrait(image, face)
    motion_fit = _encode(analysis, image)
    notes += checks.check_pose(_photo_latent(motion_fit), motion_fit)
    for note in notes:
        warnings.warn(note, checks.PortraitWarning, stacklevel=3)
    matte = head_and_hair_matte(image, analysis)
    return Found(analysis=analysis, motion_fit=motion_fit, matte=matte, faces_found=face.count,
                 warnings=tuple(notes), image=image)


def _encode(analysis, image: np.ndarray):
    from vasa3d_jax.face import encode_motion
    from vasa3d_jax.head import template_head
    from vasa3d_jax.motion_space import MotionSpace

    return encode_motion(analysis, template_head(), MotionSpace.builtin(), image_size=image.shape[:2])


def _photo_latent(motion_fit) -> np.ndarray:
    return np.asarray(motion_fit.latents, np.float32).reshape(-1)


def build_model(image: np.ndarray, found: Found, preset: PortraitPreset):
    """The portrait model (stage 2) and the photo as an anchor frame on the training crop."""
    from vasa3d_jax.head import template_head
    from vasa3d_jax.portrait.model import build_from_fit

    mf = found.motion_fit
    landmarks = np.asarray(found.analysis.landmarks)[..., :2].reshape(-1, 2)[:468]
    model = build_from_fit(image, found.matte, latent=_photo_latent(mf), shape=mf.identity, camera=mf.camera(),
                           head=template_head(), landmarks=landmarks,
                           sample_spacing_px=preset.sample_spacing(image, found.matte))
    matte = np.asarray(model.matte, np.float32)
    camera = model.camera
    box = head_box(model, CROP_MARGIN)
    crop_img = crop_resize(image, box, preset.size)
    crop_matte = crop_resize(matte[..., None], box, preset.size)[..., 0]
    K = crop_intrinsics(np.asarray(camera.K, np.float32), box, preset.size)
    anchor = Anchor(image=crop_img, matte=np.clip(crop_matte, 0.0, 1.0), latent=np.asarray(model.latent, np.float32),
                    viewmat=np.asarray(camera.viewmat, np.float32), K=K, pivot=np.asarray(PIVOT, np.float32),
                    fill=np.broadcast_to(np.asarray(BACKGROUND, np.float32), crop_img.shape).copy(),
                    mouth=anchor_mouth_mask(landmarks, box, preset.size))
    return model, anchor


def synthesise(model, anchor: Anchor, found: Found, preset: PortraitPreset, workdir: pathlib.Path,
               synthesizer=None, generator=None):
    """Training frames (stage 3), cached in ``workdir/dataset.npz``; the anchor is frame 0. Returns
    (dataset, anchor with its matte cut to the head model's coverage)."""
    from vasa3d_jax.fit.data import FitDataset
    from vasa3d_jax.portrait.synth import synthesize_frames

    path = workdir / "dataset.npz"
    if path.is_file():
        with np.load(path) as z:
            anchor = dataclasses.replace(anchor, matte=z["anchor_matte"], fill=z["anchor_fill"])
            return FitDataset(**{k: z[k] for k in ("frames", "latents", "viewmats", "K", "pivot")}), anchor
    space = model.space
    views = training_views(space, anchor.latent, anchor.camera(), anchor.pivot, preset.sampling,
                           generator=generator)
    # The photo view first: its coverage A (where the head model shows anything) cuts the matte, so
    # the anchor asks only for what the avatar can represent (no shoulders, no background halo).
    latents = jnp.asarray(np.concatenate([anchor.latent[None], views.latents]))
    cams = views.cameras(anchor.size, anchor.size)
    cams = cams.replace(viewmat=jnp.concatenate([jnp.asarray(anchor.viewmat)[None], cams.viewmat]),
                        K=jnp.concatenate([jnp.asarray(anchor.K)[None], cams.K]))
    built_in = synthesize_frames(model, latents, cams, background=BACKGROUND)
    coverage = np.asarray(built_in.alpha[0], np.float32)
    anchor = dataclasses.replace(anchor, matte=np.clip(anchor.matte * coverage, 0.0, 1.0).astype(np.float32),
                                 fill=np.asarray(built_in.rgb[0], np.float32))
    if synthesizer is None:
        frames = np.asarray(built_in.rgb[1:], np.float32)
    else:
        frames = np.asarray(synthesizer(model, latents[1:], jax.tree.map(lambda a: a[1:], cams)), np.float32)
    if frames.shape != (views.num, anchor.size, anchor.size, 3) or not np.all(np.isfinite(frames)):
        raise RuntimeError(f"the synthesiser returned frames of shape {frames.shape} (finite: "
                           f"{bool(np.all(np.isfinite(frames)))}); expected ({views.num}, {anchor.size}, "
                           f"{anchor.size}, 3) finite images")
    dataset = FitDataset(frames=np.concatenate([anchor.target[None], frames]),
                         latents=np.concatenate([anchor.latent[None], views.latents]),
                         viewmats=np.concatenate([anchor.viewmat[None], views.viewmats]),
                         K=np.concatenate([anchor.K[None], views.K]), pivot=anchor.pivot)
    tmp = workdir / "dataset.tmp.npz"
    np.savez(tmp, frames=dataset.frames, latents=dataset.latents, viewmats=dataset.viewmats, K=dataset.K,
             pivot=dataset.pivot, azimuth_deg=views.azimuth_deg, elevation_deg=views.elevation_deg,
             anchor_matte=anchor.matte, anchor_fill=anchor.fill)
    os.replace(tmp, path)
    return dataset, anchor


def frame_weights(num: int, anchor_weight: float) -> np.ndarray:
    """Sampling weights of the dataset's frames: the anchor (frame 0) counts ``anchor_weight`` times."""
    w = np.ones(num, np.float32)
    w[0] = anchor_weight
    return w / w.sum()


def fit_avatar(model, found: Found, dataset, anchor: Anchor, preset: PortraitPreset, workdir: pathlib.Path,
               progress: bool, stop_after: int | None):
    """Stage 4: the fit engine from ``initial_avatar``, the photo weighted as ``anchor_weight`` frames."""
    from vasa3d_jax import parallel
    from vasa3d_jax.avatar.io import Avatar
    from vasa3d_jax.fit.trainer import fit
    from vasa3d_jax.portrait.model import initial_avatar

    init = initial_avatar(model, model.space, config=preset.fit.avatar)
    weighted = dataclasses.replace(dataset, weights=frame_weights(dataset.num, preset.anchor_weight))
    # As many devices as divide the preset's batch (the quick preset's batch of 1 runs on one of them).
    devices = parallel.devices_for_batch(preset.fit.batch_size)
    result = fit(weighted, preset.fit, workdir / "fit", init=init, devices=devices, progress=progress,
                 stop_after=stop_after)
    return _Fitted(avatar=Avatar(result.avatar, result.params), steps=result.steps, skipped=result.skipped)


@dataclasses.dataclass(frozen=True)
class _Fitted:
    avatar: Any
    steps: int
    skipped: int


def cache_root() -> pathlib.Path:
    """Where avatars fitted by ``vasa3d speak --portrait`` / ``vasa3d demo`` are kept between runs:
    ``$VASA3D_CACHE``, else ``$XDG_CACHE_HOME/vasa3d``, else ``~/.cache/vasa3d``."""
    if os.environ.get("VASA3D_CACHE"):
        return pathlib.Path(os.environ["VASA3D_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "vasa3d"


def cache_workdir(portrait, preset: str | PortraitPreset = "quick", face: int = 0) -> pathlib.Path:
    """The work directory of (photo, preset, face) in ``cache_root()/avatars``, named by the photo's
    content hash (its decoded pixels, so a renamed or copied file is found again) and the preset:
    ``<sha256[:16]>-<preset>[-face<N>]``. ``portrait_to_avatar`` there fits once, then reuses."""
    from vasa3d_jax.face import as_rgb, load_image

    preset = get_preset(preset)
    image = load_image(portrait) if isinstance(portrait, (str, os.PathLike)) else as_rgb(portrait)
    name = f"{_digest(image, preset, face)[:16]}-{preset.name}" + (f"-face{face}" if face else "")
    return cache_root() / "avatars" / name


def fit_to_folder(portrait, out: str | os.PathLike, preset: str | PortraitPreset = "quick",
                  workdir: str | os.PathLike | None = None, **kwargs) -> dict:
    """``vasa3d fit --portrait``: the avatar into ``out/avatar.npz``, the previews (contact sheet,
    turntable), ``metrics.json`` (photo-view reconstruction, timings, findings); returns the summary."""
    import shutil

    from vasa3d_jax.portrait import metrics as metrics_lib
    from vasa3d_jax.portrait import previews

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    preset = get_preset(preset)
    result = portrait_to_avatar(portrait, preset, workdir if workdir is not None else out / "work", **kwargs)
    avatar_path = out / "avatar.npz"
    shutil.copyfile(result.workdir / "avatar.npz", avatar_path)
    t0 = time.perf_counter()
    shown = previews.write_previews(result.avatar, result.anchor, out, preset.preview_size)
    preview_s = time.perf_counter() - t0
    summary = {
        "folder": str(out), "avatar": str(avatar_path), **shown, "metrics": str(out / "metrics.json"),
        "portrait": str(portrait) if isinstance(portrait, (str, os.PathLike)) else "image",
        **preset.describe(), "faces_found": result.faces_found, "warnings": list(result.warnings),
        "fit_steps": result.fit_steps, "skipped_steps": result.skipped_steps, "reused": result.reused,
        "photo_view": metrics_lib.photo_view_metrics(result.avatar, result.anchor),
        "stage_s": {**{k: round(v, 2) for k, v in result.timings.items()}, "previews": round(preview_s, 2)},
    }
    (out / "metrics.json").write_text(json.dumps(summary, indent=1))
    return summary


# ---- crop ---------------------------------------------------------------------------------------
def anchor_mouth_mask(landmarks: np.ndarray, box: tuple[float, float, float], size: int) -> np.ndarray:
    """(size, size) float32: the photo's outer-lip polygon (``landmarks (468, 2)`` photo pixels) in
    the training crop ``box``, grown by ANCHOR_MOUTH_MARGIN of the mouth width and feathered over as
    much again (``Anchor``: where the anchor shows the synthesiser's frame instead of the photo)."""
    import scipy.ndimage

    from vasa3d_jax.avatar.template import _inside
    from vasa3d_jax.head.landmarks import LIP_OUTER_CORNERS, LIP_OUTER_RING

    x0, y0, side = box
    scale = size / side
    ring = (np.asarray(landmarks, np.float64)[list(LIP_OUTER_RING), :2] - (x0, y0)) * scale
    pts = np.stack(np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="xy"), -1).reshape(-1, 2)
    inside = _inside(pts, ring).reshape(size, size)
    a, b = (np.asarray(landmarks, np.float64)[i, :2] * scale for i in LIP_OUTER_CORNERS)
    r = max(ANCHOR_MOUTH_MARGIN * float(np.linalg.norm(a - b)), 1.0)
    dist = scipy.ndimage.distance_transform_edt(~inside)
    return np.clip(2.0 - dist / r, 0.0, 1.0).astype(np.float32)


def head_box(model, margin: float) -> tuple[float, float, float]:
    """(x0, y0, side): the square around the portrait head's projected vertices (hair shell and neck
    included: what the avatar can show) at the photo's latent, grown by ``margin``."""
    from vasa3d_jax.portrait.model import model_vertices

    xy, _ = project_points(model_vertices(model, model.latent), model.camera.viewmat, model.camera.K)
    xy = np.asarray(xy)
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    return float((x0 + x1 - side) / 2.0), float((y0 + y1 - side) / 2.0), float(side)


def crop_box(matte: np.ndarray, margin: float) -> tuple[float, float, float]:
    """(x0, y0, side) pixels: the square around the matte's box (> 0.5) grown by ``margin``."""
    ys, xs = np.nonzero(matte > 0.5)
    if len(xs) == 0:
        raise ValueError("the head-and-hair matte is empty: no head found to crop")
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return float(cx - side / 2.0), float(cy - side / 2.0), float(side)


def crop_resize(image: np.ndarray, box: tuple[float, float, float], size: int) -> np.ndarray:
    """Bilinear resample of the square ``box`` of ``image`` (H, W, C) to (size, size, C); outside the
    image reads as the background (white for RGB, 0 for a matte)."""
    import scipy.ndimage

    x0, y0, side = box
    s = side / size
    u = x0 + (np.arange(size) + 0.5) * s - 0.5  # source pixel coordinates of target pixel centres
    v = y0 + (np.arange(size) + 0.5) * s - 0.5
    vv, uu = np.meshgrid(v, u, indexing="ij")
    # Anti-alias before subsampling: a Gaussian of ~half the step (a box filter's variance).
    sigma = max(0.0, 0.5 * (s - 1.0))
    fill = 1.0 if image.shape[-1] == 3 else 0.0
    out = np.empty((size, size, image.shape[-1]), np.float32)
    for c in range(image.shape[-1]):
        ch = image[..., c].astype(np.float32)
        if sigma > 0:
            ch = scipy.ndimage.gaussian_filter(ch, sigma)
        out[..., c] = scipy.ndimage.map_coordinates(ch, [vv, uu], order=1, mode="constant", cval=fill)
    return out


# ---- the work directory -------------------------------------------------------------------------
def _digest(image: np.ndarray, preset: PortraitPreset, face: int = 0) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(np.round(np.asarray(image, np.float32) * 255).astype(np.uint8)).tobytes())
    h.update(repr(dataclasses.astuple(preset)).encode())
    h.update(str(FORMAT_VERSION).encode())
    if face:  # face 0 keeps the digests of work directories written before faces could be chosen
        h.update(f"face {face}".encode())
    return h.hexdigest()


def _claim(workdir: pathlib.Path, digest: str, preset: PortraitPreset) -> None:
    """A work directory holds one (portrait, preset): a different one is an error, not a silent mix."""
    manifest = workdir / "manifest.json"
    if manifest.is_file():
        held = json.loads(manifest.read_text())
        if held.get("digest") != digest:
            raise ValueError(f"{workdir} holds the work of another portrait or preset "
                             f"({held.get('preset')!r}); use another work directory or delete it")
        return
    manifest.write_text(json.dumps({"digest": digest, "preset": preset.name, "format": FORMAT_VERSION,
                                    "settings": preset.describe()}, indent=1))


def _save_result(workdir: pathlib.Path, avatar, anchor: Anchor, info: dict) -> None:
    from vasa3d_jax.avatar.io import save_avatar

    save_avatar(avatar, workdir / "avatar.npz")
    anchor.save(workdir / "anchor.npz")
    (workdir / "result.json").write_text(json.dumps(info, indent=1))


def _load_result(workdir: pathlib.Path):
    from vasa3d_jax.avatar.io import load_avatar

    paths = [workdir / n for n in ("avatar.npz", "anchor.npz", "result.json")]
    if not all(p.is_file() for p in paths):
        return None
    t0 = time.perf_counter()
    avatar = load_avatar(paths[0])
    anchor = Anchor.load(paths[1])
    info = json.loads(paths[2].read_text())
    info["load_s"] = round(time.perf_counter() - t0, 2)
    return avatar, anchor, info


def _log_timings(workdir: pathlib.Path, timings: dict) -> None:
    path = workdir / "timings.json"
    runs = json.loads(path.read_text()) if path.is_file() else []
    runs.append({k: round(v, 2) for k, v in timings.items()})
    path.write_text(json.dumps(runs, indent=1))


class _Stage:
    """Times one stage into ``timings`` and advances the stage bar."""

    def __init__(self, name: str, timings: dict, bar):
        self.name, self.timings, self.bar = name, timings, bar

    def __enter__(self):
        self.bar.set_postfix_str(self.name)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.timings[self.name] = time.perf_counter() - self.t0
        if exc[0] is None:
            self.bar.update(1)
        return False
