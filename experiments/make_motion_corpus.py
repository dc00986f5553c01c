"""Generate the synthetic speech-to-motion corpus (espeak-ng speech -> motion targets).

Command (the default corpus the motion model trains on):

    python experiments/make_motion_corpus.py --out work_dirs/motion_corpus --clips 1500 \
        --heldout 100 --seed 0

It makes 2.65 h of training speech and 0.17 h of held-out speech (6.4 s per clip, 91 voice/variant
pairs) in 13.5 minutes on the 2-core CPU shared with other jobs (~2 clips/s). Needs espeak-ng (`sudo apt-get install espeak-ng`).

Writes ``OUT/train/NNNNNN.npz`` and ``OUT/heldout/NNNNNN.npz`` (format: docs/motion_corpus.md),
``OUT/{train,heldout}/index.jsonl`` (one line per clip: file, text, voice, rate, pitch, seed, seconds)
and ``OUT/READY`` with the clip counts once everything is written. Existing clips are kept, so an
interrupted run resumes. The sentences of the two splits are disjoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import pathlib

import ml_collections
import numpy as np
import tqdm

from vasa3d_jax.constants import SAMPLE_RATE
from vasa3d_jax.motion import synthetic


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        out="work_dirs/motion_corpus",  # corpus folder
        clips=1500,  # training clips (1-3 sentences each, 6.4 s on average)
        heldout=100,  # held-out clips (different sentences)
        seed=0,  # corpus seed: sentences, voices, rates, pitches and each clip's own seed
        workers=2,  # processes (espeak-ng's state is per process)
        first=0,  # > 0: make only the first `first` training clips of the corpus (a subset, same specs)
    ))


def _write(job: tuple[str, dict]) -> dict:
    path, spec = job
    path = pathlib.Path(path)
    if not path.exists():
        synthetic.save_clip(path, synthetic.make_clip(synthetic.ClipSpec(**spec)))
    with np.load(path) as clip:
        n = len(clip["audio"])
    return dict(file=path.name, seconds=n / SAMPLE_RATE, **spec)


def main(config: ml_collections.ConfigDict) -> None:
    out = pathlib.Path(config.out)
    train, heldout = synthetic.corpus_specs(config.clips, config.heldout, config.seed)
    train = train[:config.first] if config.first > 0 else train
    (out / "READY").unlink(missing_ok=True)
    totals = {}
    with multiprocessing.get_context("spawn").Pool(config.workers) as pool:
        for split, specs in (("heldout", heldout), ("train", train)):
            folder = out / split
            folder.mkdir(parents=True, exist_ok=True)
            jobs = [(str(folder / f"{i:06d}.npz"), dataclasses.asdict(s)) for i, s in enumerate(specs)]
            rows = list(tqdm.tqdm(pool.imap(_write, jobs, chunksize=4), total=len(jobs), desc=split))
            with open(folder / "index.jsonl", "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
            totals[split] = (len(rows), sum(r["seconds"] for r in rows))
    (out / "READY").write_text(" ".join(
        f"{split}={n} clips ({s / 3600:.2f} h)" for split, (n, s) in totals.items()) + "\n")
    print(json.dumps({split: dict(clips=n, hours=round(seconds / 3600, 3))
                      for split, (n, seconds) in totals.items()}))


if __name__ == "__main__":
    defaults = get_config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=defaults.out)
    parser.add_argument("--clips", type=int, default=defaults.clips)
    parser.add_argument("--heldout", type=int, default=defaults.heldout)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--first", type=int, default=defaults.first,
                        help="make only the first N training clips (a subset of the same corpus)")
    main(ml_collections.ConfigDict(vars(parser.parse_args())))
