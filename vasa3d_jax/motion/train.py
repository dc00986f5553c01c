"""Training the motion diffusion transformer (VASA-1 §3.2), data-parallel over devices.

Per example of a batch of windows (normalised units; ``data.WindowBatch``):

(1) t ~ U{1..T},  ε ~ N(0, I),  X_t = √ᾱ_t X_0 + √(1−ᾱ_t) ε                  (diffusion.py eq. 2)
(2) condition dropout (VASA-1): audio, gaze, distance, emotion each dropped with p = 0.1;
    the previous-window context (X_pre, A_pre together) with p = 0.5; labels a clip lacks count as
    dropped. Audio truncation: with p = 0.25 (ours) the audio of frames ≥ L, L ~ U{1..W−1}, is
    marked absent, so the model learns windows whose audio has not fully arrived.
(3) loss ℓ = Σ_frames m_f ‖X̂_0 − X_0‖² / (D · Σ_f m_f), m_f = 1 on real (not padded) frames.
The batch loss is the mean of ℓ; each device averages its shard and the gradients are averaged
across devices with ``jax.lax.pmean(..., "data")``, so the update equals the single-device one.

Optimiser: AdamW (Loshchilov & Hutter 2019) with gradient clipping, linear warm-up and cosine decay.
The step runs under ``jax.shard_map`` on a one-axis mesh (``parallel.py``); checkpoints go through
``ckpt.py`` (Orbax) and a run resumes automatically from its work directory.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from vasa3d_jax import ckpt, parallel
from vasa3d_jax.motion import diffusion
from vasa3d_jax.motion.data import Clip, Stats, WindowBatch, WindowSampler
from vasa3d_jax.motion.dit import Conditions, DiTConfig, MotionDiT, init_params
from vasa3d_jax.motion.sample import MotionGenerator, save_generator
from vasa3d_jax.motion_space import MotionSpace


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000  # total optimiser steps (the LR schedule spans them)
    batch_size: int = 32  # global batch (windows); a multiple of the device count
    learning_rate: float = 5e-4  # peak AdamW learning rate
    warmup_steps: int = 100  # linear warm-up
    final_lr_fraction: float = 0.1  # cosine decay ends at this fraction of the peak
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    grad_clip: float = 1.0  # global-norm clip
    cond_dropout: float = 0.1  # VASA-1: each condition
    context_dropout: float = 0.5  # VASA-1: previous-window motion and audio
    truncate_prob: float = 0.25  # ours: share of windows whose audio is cut at a random frame
    train_steps: int = diffusion.DEFAULT_TRAIN_STEPS  # diffusion steps T
    seed: int = 0
    log_every: int = 25  # metrics line every this many steps
    save_every: int = 250  # checkpoint every this many steps (and at the end / on SIGTERM)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """step: () int32; params: MotionDiT variables; opt_state: optax state."""

    step: jnp.ndarray
    params: dict
    opt_state: optax.OptState


def make_optimizer(cfg: TrainConfig) -> tuple[optax.GradientTransformation, optax.Schedule]:
    lr = optax.warmup_cosine_decay_schedule(
        0.0, cfg.learning_rate, max(cfg.warmup_steps, 1), max(cfg.steps, cfg.warmup_steps + 1),
        cfg.learning_rate * cfg.final_lr_fraction)
    tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip),
                     optax.adamw(lr, b1=0.9, b2=0.999, weight_decay=cfg.weight_decay))
    return tx, lr


def normalize_batch(batch: WindowBatch, stats: Stats) -> dict[str, np.ndarray]:
    """Host-side: raw window batch → normalised arrays the step consumes."""
    d = batch.as_dict()
    for k in ("motion", "prev_motion"):
        d[k] = (d[k] - stats.motion_mean) / stats.motion_std
    for k in ("features", "prev_features"):
        d[k] = (d[k] - stats.feature_mean) / stats.feature_std
    d["distance"] = (d["distance"] - stats.distance_mean) / stats.distance_std
    return {k: np.asarray(v, np.float32 if v.dtype.kind == "f" else v.dtype) for k, v in d.items()}


def corrupt(key: jax.Array, ex: dict, cfg: TrainConfig, schedule: diffusion.Schedule
            ) -> tuple[jnp.ndarray, jnp.ndarray, Conditions]:
    """Eq. (1)–(2) for one example: ``(x_t (W, D), t (), conditions (unbatched))``."""
    w = ex["motion"].shape[0]
    k = jax.random.split(key, 9)
    t = jax.random.randint(k[0], (), 1, cfg.train_steps + 1)
    x_t = diffusion.q_sample(schedule, ex["motion"][None], t[None],
                             jax.random.normal(k[1], ex["motion"].shape)[None])[0]

    def keep(kk, p):
        return jax.random.bernoulli(kk, 1.0 - p)

    cut = jax.random.bernoulli(k[7], cfg.truncate_prob) & (jnp.arange(w) >= jax.random.randint(k[8], (), 1, w))
    cond = Conditions(
        audio=ex["features"], audio_mask=ex["frame_valid"] & keep(k[2], cfg.cond_dropout) & ~cut,
        prev_motion=ex["prev_motion"], prev_audio=ex["prev_features"],
        prev_mask=ex["has_prev"] & keep(k[3], cfg.context_dropout),
        gaze=ex["gaze"], gaze_mask=ex["has_gaze"] & keep(k[4], cfg.cond_dropout),
        distance=ex["distance"], distance_mask=ex["has_distance"] & keep(k[5], cfg.cond_dropout),
        emotion=ex["emotion"], emotion_mask=ex["has_emotion"] & keep(k[6], cfg.cond_dropout))
    return x_t, t, cond


@functools.lru_cache(maxsize=8)
def make_train_step(model_cfg: DiTConfig, cfg: TrainConfig, mesh: jax.sharding.Mesh):
    """The jitted data-parallel step ``(state, batch, key_data) -> (state, metrics)``; ``batch`` and
    ``key_data (B, 2)`` uint32 per-example keys are sharded over ``"data"``, the state replicated.
    Cached per (configs, mesh), so repeated runs in one process compile once."""
    model = MotionDiT(model_cfg)
    tx, lr = make_optimizer(cfg)
    schedule = diffusion.cosine_schedule(cfg.train_steps)

    def loss_fn(params, batch, keys):
        x_t, t, cond = jax.vmap(lambda kk, ex: corrupt(kk, ex, cfg, schedule))(keys, batch)
        x0_hat, _ = model.apply(params, x_t, t, cond)
        m = batch["frame_valid"].astype(jnp.float32)
        per_example = jnp.sum(m[..., None] * (x0_hat - batch["motion"]) ** 2, axis=(1, 2)) \
            / (x0_hat.shape[-1] * jnp.maximum(m.sum(1), 1.0))
        return per_example.mean()

    def step_body(state: TrainState, batch, key_data):
        keys = jax.random.wrap_key_data(key_data)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, batch, keys)
        grads = jax.lax.pmean(grads, parallel.DATA_AXIS)
        loss = jax.lax.pmean(loss, parallel.DATA_AXIS)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "lr": lr(state.step)}
        return TrainState(state.step + 1, params, opt_state), metrics

    sharded = parallel.data_parallel(step_body, mesh, in_specs=(P(), P(parallel.DATA_AXIS),
                                                                P(parallel.DATA_AXIS)),
                                     out_specs=(P(), P()))
    return jax.jit(sharded, donate_argnums=(0,))


def init_state_fn(model_cfg: DiTConfig, cfg: TrainConfig):
    """``key -> TrainState`` (fresh parameters and optimiser state)."""
    tx, _ = make_optimizer(cfg)

    def init(key):
        params = init_params(model_cfg, key)
        return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))

    return init


@functools.lru_cache(maxsize=8)
def _init_replicated(model_cfg: DiTConfig, cfg: TrainConfig, mesh: jax.sharding.Mesh):
    return jax.jit(init_state_fn(model_cfg, cfg), out_shardings=parallel.replicated(mesh))


def train(clips: Sequence[Clip], workdir: str | pathlib.Path, cfg: TrainConfig, model_cfg: DiTConfig,
          *, space: MotionSpace | None = None, feature_encoder: str = "whisper",
          devices: Sequence[jax.Device] | None = None, stop_after: int | None = None,
          progress: bool = True, init_from: MotionGenerator | None = None) -> tuple[MotionGenerator, TrainState]:
    """Trains (or resumes training) in ``workdir``; returns the generator and the final state.

    ``init_from`` (a generator of the same ``model_cfg``): fine-tune it, starting from its parameters and
    keeping its normalisation statistics (its weights expect them), with a fresh optimiser state.

    ``stop_after`` ends this run after that many total steps (as a preemption would) without
    changing the schedule; rerunning resumes from the last checkpoint. Writes
    ``workdir/metrics.jsonl``, ``workdir/ckpt/`` and, when all steps are done, the exported
    generator ``workdir/motion_dit.{npz,json}``.
    """
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    space = space or MotionSpace.builtin()
    if model_cfg.motion_size != space.size:
        raise ValueError(f"model motion_size {model_cfg.motion_size} != MotionSpace size {space.size}")

    # ---- Set up mesh ------------------------------------------------------------------------
    mesh = parallel.data_mesh(devices)
    n_dev = mesh.shape[parallel.DATA_AXIS]
    if cfg.batch_size % n_dev:
        raise ValueError(f"batch_size={cfg.batch_size} must be a multiple of the {n_dev} devices")

    # ---- Build state (created already replicated) and the step ---------------------------------
    init = init_state_fn(model_cfg, cfg)
    init_sharded = _init_replicated(model_cfg, cfg, mesh)
    train_step = make_train_step(model_cfg, cfg, mesh)

    # ---- Restore checkpoint (automatic resume) -------------------------------------------------
    with ckpt.Checkpointer(workdir / "ckpt", max_to_keep=2) as manager, ckpt.PreemptionGuard() as guard:
        abstract = jax.eval_shape(init, jax.random.key(cfg.seed))
        abstract = jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=parallel.replicated(mesh)), abstract)
        restored = manager.restore_latest(abstract)
        if restored is None:
            state, start = init_sharded(jax.random.key(cfg.seed)), 0
            stats = Stats.from_clips(clips)
            if init_from is not None:
                if init_from.config != model_cfg:
                    raise ValueError(f"init_from's model {init_from.config} differs from model_cfg {model_cfg}; "
                                     "fine-tune a generator of the same configuration")
                params = jax.device_put(init_from.params, parallel.replicated(mesh))
                state = dataclasses.replace(state, params=params)  # Adam moments start at zero anyway
                stats = init_from.stats
        else:
            state, start = restored
            stats = Stats.from_dict(manager.metadata()["stats"])
        meta = {"stats": stats.to_dict(), "model": model_cfg.to_dict(), "train": dataclasses.asdict(cfg)}
        sampler = WindowSampler(clips, model_cfg.window, model_cfg.context, model_cfg.emotion_size, cfg.seed)

        # ---- Train loop ---------------------------------------------------------------------
        end = cfg.steps if stop_after is None else min(stop_after, cfg.steps)
        metrics_file = (workdir / "metrics.jsonl").open("a")
        t0, last = time.perf_counter(), start
        bar = tqdm(range(start, end), initial=start, total=end, desc="train motion DiT", disable=not progress)
        for step in bar:
            batch = parallel.shard_batch(normalize_batch(sampler.batch(cfg.batch_size, step), stats), mesh)
            keys = parallel.shard_batch(parallel.example_keys(cfg.seed, step, cfg.batch_size), mesh)
            state, metrics = train_step(state, batch, keys)
            done = step + 1
            if done % cfg.log_every == 0 or done == end:
                m = {k: float(v) for k, v in jax.device_get(metrics).items()}
                now = time.perf_counter()
                m.update(step=done, steps_per_s=(done - last) / max(now - t0, 1e-9), time=time.time())
                t0, last = now, done
                metrics_file.write(json.dumps(m) + "\n")
                metrics_file.flush()
                bar.set_postfix(loss=f"{m['loss']:.4f}")
            if guard.requested:
                manager.save(done, state, meta, force=True)
                break
            if done % cfg.save_every == 0 and done != end:
                manager.save(done, state, meta)
        metrics_file.close()
        if int(state.step) > 0 and manager.latest_step() != int(state.step):
            manager.save(int(state.step), state, meta, force=True)
        manager.wait()

    gen = MotionGenerator.create(jax.device_get(state.params), stats, model_cfg, space, feature_encoder,
                                 cfg.train_steps)
    if int(state.step) >= cfg.steps:
        save_generator(gen, workdir / "motion_dit", extra={"train": dataclasses.asdict(cfg),
                                                           "steps_done": int(state.step)})
    return gen, state
