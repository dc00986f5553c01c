"""Evaluate a motion generator on held-out synthetic sentences: lip-sync, head motion, seams, speed.

Command (the shipped model; held-out clips from experiments/make_motion_corpus.py; speech features
are computed from each clip's audio with the model's encoder, as at inference):

    python experiments/eval_motion.py                       # --model PATH for another generator

The last line printed is JSON. Goals (issue 5 §4): ``lipsync_corr`` ≥ 0.7, ``frames_per_s`` ≥ 25,
``first_window_s`` ≤ 0.5 s; ``lipsync_corr_mismatched`` far below ``lipsync_corr``. Keys:

* ``lipsync_corr``: mean over held-out clips of the Pearson correlation between the generated and the
  target mouth opening (``MotionSpace.mouth_open``), each clip generated from its own audio.
* ``lipsync_corr_mismatched``: the same target, motion generated from another clip's audio.
* ``delta_pose`` / ``delta_pose_target``: ΔP of VASA-1, the mean absolute change of the head
  rotation angles between adjacent frames, in degrees (generated / ground truth).
* ``seam_jump``: mean frame-to-frame change (L2, normalised units) across window borders divided by
  the same within windows (1 = no visible seam); ``seam_jump_target`` is that ratio on the ground truth.
* ``frames_per_s``: steady-state streaming speed, motion frames per second of wall time, from audio:
  it includes the speech features (the model's encoder) and the sampler, not the one-off compile.
  ``frames_per_s_sampler`` is the sampler alone (features given).
* ``first_window_s``: wall time from handing the stream the first window's audio (W frames) to the
  first motion block, compiled, features included (median of 5 streams).
* ``paper_size_frames_per_s``: the sampler alone with the paper's 8 × 512 denoiser (random weights,
  same sampler), for scale.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import ml_collections
import numpy as np

from vasa3d_jax.motion import DEFAULT_MODEL, generate, load_generator, stream
from vasa3d_jax.constants import SAMPLE_RATE
from vasa3d_jax.motion.data import fit_length, list_clips, load_clip, speech_feature_fn
from vasa3d_jax.motion.dit import DiTConfig, init_params
from vasa3d_jax.motion.sample import MotionGenerator

SAMPLES_PER_FRAME = 640  # 16 kHz / 25 fps


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        model=str(DEFAULT_MODEL),
        heldout="work_dirs/motion_corpus/heldout",
        num_clips=40,  # held-out clips evaluated (sorted by name)
        seed=0,
        sampler=dict(),  # overrides of the model's own sampler (motion_dit.json "sampler"), e.g. steps=25
        speed_seconds=20.0,  # audio length of the speed test
        paper_size=True,  # also time the paper-size (8 x 512) denoiser
    ))


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def seam_steps(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(steps across window borders, steps within windows); step i = |x[i+1] − x[i]|."""
    step = np.linalg.norm(np.diff(x, axis=0), axis=-1)
    border = np.arange(step.shape[0]) % window == window - 1
    return step[border], step[~border]


def delta_pose_deg(gen: MotionGenerator, x: np.ndarray) -> float:
    rot = np.asarray(gen.space.pose_rotation(x))
    return float(np.degrees(np.abs(np.diff(rot, axis=0))).mean())


def time_stream(gen, wav, sampler, feature_fn, key) -> tuple[float, float, int]:
    """(first window latency, steady-state frames/s, frames) for streaming ``wav`` in W-frame chunks."""
    chunk = gen.config.window * SAMPLES_PER_FRAME
    chunks = [wav[i:i + chunk] for i in range(0, len(wav), chunk)]
    times, frames = [], []
    it = stream(gen, iter(chunks), key=key, sampler=sampler, feature_fn=feature_fn)
    t0 = time.perf_counter()
    for block in it:
        now = time.perf_counter()
        times.append(now - t0)
        frames.append(len(block))
        t0 = time.perf_counter()
    steady = sum(frames[1:-1]) / sum(times[1:-1])  # full windows after the first
    return times[0], steady, sum(frames)


def main(config) -> dict:
    gen = load_generator(config.model)
    sampler = dataclasses.replace(gen.sampler, **config.sampler)
    key = jax.random.key(config.seed)
    paths = list_clips(config.heldout)[: config.num_clips]
    feature_fn = speech_feature_fn(gen.feature_encoder)
    clips = []
    for p in paths:  # features from the audio, exactly as at inference (precomputed ones not needed)
        clip = load_clip(p, gen.space, require_features=False, with_audio=True)
        feats = fit_length(np.asarray(feature_fn(clip.audio)), clip.num_frames, p)
        clips.append(dataclasses.replace(clip, features=feats))
    w = gen.config.window
    mean, std = np.asarray(gen.motion_mean), np.asarray(gen.motion_std)

    corr, corr_mis, dp, dp_target = [], [], [], []
    border, within, border_t, within_t = [], [], [], []
    for i, clip in enumerate(clips):
        x = generate(gen, clip.features, key=jax.random.fold_in(key, i), sampler=sampler)
        target_mouth = np.asarray(gen.space.mouth_open(clip.motion))
        corr.append(pearson(np.asarray(gen.space.mouth_open(x)), target_mouth))
        other = clips[(i + 1) % len(clips)].features
        other = np.resize(other, (clip.num_frames, other.shape[1]))  # repeat or cut to this length
        x_mis = generate(gen, other, key=jax.random.fold_in(key, i), sampler=sampler)
        corr_mis.append(pearson(np.asarray(gen.space.mouth_open(x_mis)), target_mouth))
        dp.append(delta_pose_deg(gen, x))
        dp_target.append(delta_pose_deg(gen, clip.motion))
        b, wi = seam_steps((x - mean) / std, w)
        bt, wt = seam_steps((clip.motion - mean) / std, w)
        border.append(b), within.append(wi), border_t.append(bt), within_t.append(wt)

    # ---- speed: stream a long held-out recording (clips joined) in W-frame chunks ---------------
    wav = np.concatenate([c.audio for c in clips])[: int(config.speed_seconds * SAMPLE_RATE)]
    time_stream(gen, wav[: 3 * w * SAMPLES_PER_FRAME], sampler, feature_fn, key)  # compile
    first, fps, _ = time_stream(gen, wav, sampler, feature_fn, key)
    # the first window's latency is one sample of a noisy quantity on a shared machine: median of 5
    first = float(np.median([first] + [time_stream(gen, wav[: 3 * w * SAMPLES_PER_FRAME], sampler, feature_fn,
                                                   key)[0] for _ in range(4)]))
    feats = feature_fn(wav)
    _, fps_sampler, _ = _time_features(gen, feats, sampler, key)

    out = dict(
        lipsync_corr=float(np.mean(corr)), lipsync_corr_mismatched=float(np.mean(corr_mis)),
        delta_pose=float(np.mean(dp)), delta_pose_target=float(np.mean(dp_target)),
        seam_jump=float(np.concatenate(border).mean() / np.concatenate(within).mean()),
        seam_jump_target=float(np.concatenate(border_t).mean() / np.concatenate(within_t).mean()),
        frames_per_s=fps, frames_per_s_sampler=fps_sampler, first_window_s=first,
        clips=len(clips), sampler=dataclasses.asdict(sampler), model=dict(gen.config.to_dict()),
        feature_encoder=gen.feature_encoder, devices=str(jax.devices()[0].platform))
    if config.paper_size:
        paper_cfg = DiTConfig.for_space(gen.space, feature_size=gen.config.feature_size,
                                        emotion_size=gen.config.emotion_size)  # 8 x 512, 8 heads
        paper = MotionGenerator.create(init_params(paper_cfg, jax.random.key(0)), gen.stats, paper_cfg,
                                       gen.space, gen.feature_encoder)
        out["paper_size_frames_per_s"] = _time_features(paper, feats[: 4 * w], sampler, key)[1]
    return out


def _time_features(gen, feats, sampler, key) -> tuple[float, float, int]:
    """Like ``time_stream`` for features given in W-frame chunks (the sampler alone)."""
    w = gen.config.window
    chunks = [feats[i:i + w] for i in range(0, len(feats), w)]
    list(stream(gen, chunks[:2], key=key, sampler=sampler))  # compile
    times, frames = [], []
    t0 = time.perf_counter()
    for block in stream(gen, iter(chunks), key=key, sampler=sampler):
        now = time.perf_counter()
        times.append(now - t0)
        frames.append(len(block))
        t0 = time.perf_counter()
    return times[0], sum(frames[1:]) / sum(times[1:]), sum(frames)


if __name__ == "__main__":
    defaults = get_config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument("--heldout", default=defaults.heldout)
    parser.add_argument("--num_clips", type=int, default=defaults.num_clips)
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the model's)")
    parser.add_argument("--audio_scale", type=float, default=None, help="λ_audio (default: the model's)")
    parser.add_argument("--no_paper_size", action="store_true")
    a = parser.parse_args()
    cfg = get_config()
    cfg.model, cfg.heldout, cfg.num_clips = a.model, a.heldout, a.num_clips
    cfg.paper_size = not a.no_paper_size
    cfg.sampler = {k: v for k, v in dict(steps=a.steps, audio_scale=a.audio_scale).items() if v is not None}
    result = main(cfg)
    print(json.dumps(result))
