"""Train the shipped motion diffusion transformer on the synthetic speech-to-motion corpus.

Command (after ``python experiments/make_motion_corpus.py``; resumes automatically from --workdir):

    python experiments/train_motion_synthetic.py --workdir work_dirs/motion_train
    python experiments/train_motion_synthetic.py --workdir work_dirs/motion_train --export

The first computes the clips' speech features once (``data.precompute_features``, the encoder in the
config; log-mel by default), then trains; ``--export`` writes the latest checkpoint as a generator
(``motion_dit.{npz,json}``) to ``--export_to`` (default: the package's ``motion/assets``), from where
``vasa3d_jax.motion.load_default_model()`` reads it. The shipped model (4 layers, width 128) reaches
held-out lip-sync correlation ≥ 0.7 (``experiments/eval_motion.py``); its recipe, step count, wall time
and metrics are in ``vasa3d_jax/motion/assets/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib

import jax
import ml_collections

from vasa3d_jax import ckpt
from vasa3d_jax.motion import DEFAULT_MODEL, load_generator, save_generator
from vasa3d_jax.motion.data import Stats, list_clips, load_clip, precompute_features
from vasa3d_jax.motion.dit import DiTConfig
from vasa3d_jax.motion.sample import MotionGenerator, SamplerConfig
from vasa3d_jax.motion.train import TrainConfig, init_state_fn, train
from vasa3d_jax.motion_space import MotionSpace


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        corpus="work_dirs/motion_corpus",  # make_motion_corpus.py output: train/ and heldout/
        feature_encoder="logmel",  # "logmel" (F = 80, cheap, streams exactly) or "whisper" (F = 384)
        # 4 x 128 trains in ~30 min on 2 shared CPU cores and samples far faster than real time
        # (the paper's 8 x 512: DiTConfig() defaults).
        model=dict(num_layers=4, width=128, num_heads=4, window=50, context=10, emotion_size=3,
                   audio_to_motion_tokens=True),
        train=dict(steps=600, batch_size=32, learning_rate=1e-3, warmup_steps=100, save_every=100,
                   log_every=25, seed=0),
        init="",  # a generator (.npz/.json stem) to fine-tune from; "" trains from scratch
    ))


def model_and_train_configs(config, feature_size: int) -> tuple[DiTConfig, TrainConfig]:
    space = MotionSpace.builtin()
    return (DiTConfig.for_space(space, feature_size=feature_size, **config.model),
            TrainConfig(**config.train))


def feature_size_of(encoder: str) -> int:
    return {"logmel": 80, "whisper": 384}[encoder]


def export(workdir: pathlib.Path, config, target: pathlib.Path) -> MotionGenerator:
    """Writes the latest checkpoint in ``workdir`` as a generator at ``target`` (.npz + .json)."""
    model_cfg, train_cfg = model_and_train_configs(config, feature_size_of(config.feature_encoder))
    init = init_state_fn(model_cfg, train_cfg)
    with ckpt.Checkpointer(workdir / "ckpt") as manager:
        state, step = manager.restore(jax.eval_shape(init, jax.random.key(0)))
        stats = Stats.from_dict(manager.metadata()["stats"])
    sampler = load_generator(config.init).sampler if config.init else SamplerConfig()  # the tuned sampler stays
    gen = MotionGenerator.create(jax.device_get(state.params), stats, model_cfg, MotionSpace.builtin(),
                                 config.feature_encoder, train_cfg.train_steps, sampler)
    save_generator(gen, target, extra={"train": dataclasses.asdict(train_cfg), "steps_done": int(step),
                                       "corpus": config.corpus})
    return gen


def main(config, workdir: pathlib.Path, export_to: pathlib.Path | None) -> None:
    if export_to is not None:
        export(workdir, config, export_to)
        print(json.dumps({"exported": str(export_to)}))
        return
    corpus = pathlib.Path(config.corpus)
    for split in ("train", "heldout"):
        precompute_features(corpus / split, encoder=config.feature_encoder)
    space = MotionSpace.builtin()
    clips = [load_clip(p, space, feature_encoder=config.feature_encoder) for p in list_clips(corpus / "train")]
    model_cfg, train_cfg = model_and_train_configs(config, clips[0].features.shape[1])
    (workdir).mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json(indent=2))
    start = load_generator(config.init) if config.init else None
    _, state = train(clips, workdir, train_cfg, model_cfg, space=space, feature_encoder=config.feature_encoder,
                     init_from=start)
    print(json.dumps({"steps": int(state.step), "workdir": str(workdir)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="work_dirs/motion_train")
    parser.add_argument("--export", action="store_true", help="export the latest checkpoint and stop")
    parser.add_argument("--export_to", default=str(DEFAULT_MODEL))
    parser.add_argument("--steps", type=int, help="override config.train.steps")
    parser.add_argument("--feature_encoder", choices=("logmel", "whisper"), help="override config.feature_encoder")
    parser.add_argument("--corpus", help="override config.corpus")
    parser.add_argument("--init", help="fine-tune this generator (e.g. the shipped one: vasa3d_jax/motion/assets/motion_dit)")
    parser.add_argument("--learning_rate", type=float, help="override config.train.learning_rate")
    parser.add_argument("--warmup_steps", type=int, help="override config.train.warmup_steps")
    args = parser.parse_args()
    cfg = get_config()
    if args.steps:
        cfg.train.steps = args.steps
    for name in ("learning_rate", "warmup_steps"):
        if getattr(args, name) is not None:
            cfg.train[name] = getattr(args, name)
    if args.corpus:
        cfg.corpus = args.corpus
    if args.init:
        cfg.init = args.init
    if args.feature_encoder:
        cfg.feature_encoder = args.feature_encoder
    main(cfg, pathlib.Path(args.workdir), pathlib.Path(args.export_to) if args.export else None)
