"""Face analysis speed: detection + 468 landmarks + irises per frame, Flax port vs LiteRT, same run.

Command (from the repository root):

    VASA3D_JAX_CACHE=/tmp/nocache python experiments/bench_face.py            # all sections
    python experiments/bench_face.py --sections face --repeats 5

Prints one JSON object: for each backend and batch size (1 and 32 frames of skimage's astronaut,
512x512) the median seconds per frame over ``repeats`` timed calls after a warm-up call, the ratio
flax/litert (goal: <= 1 at batch 32 on the project's 2-core CPU), and the Flax compile time (first
call minus a steady call; the persistent compile cache is bypassed unless ``--cache`` is given).
Measured 2026-12-02 on the shared 2-core CPU at a load average of 13-17 (other jobs running), two
runs: batch 32 flax 118 / 103 ms per frame vs litert 68 / 79 (ratio 1.73 / 1.30); batch 1 ratio
0.77 / 1.90; Flax compile of the three nets 72 / 84 s under that load. Per network at batch 32
(same load) the nets are near parity (detector 7.8 vs 6.5 ms, mesh 8.2 vs 7.2, iris 11.1 vs 13.2
per image); the goal (flax <= litert at batch 32) is not shown on this loaded machine.
Sections are functions in ``SECTIONS``; another part of the project adds its own (e.g. the motion
encoder's frames per second) by adding a function there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np


def get_config():
    return dict(batches=(1, 32), repeats=5, image="astronaut")


def _frames(n: int) -> np.ndarray:
    import skimage.data
    img = skimage.data.astronaut()
    # Shift each frame by a pixel or two so the frames are not identical (as in a video).
    return np.stack([np.roll(img, (i % 3, i % 2), axis=(0, 1)) for i in range(n)])


def _time(fn, repeats: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return first, statistics.median(ts)


def bench_face(cfg) -> dict:
    import jax
    from vasa3d_jax.face import analyze_faces

    out = {}
    for batch in cfg["batches"]:
        frames = _frames(batch)
        row = {}
        for backend in ("litert", "flax"):
            def run():
                res = analyze_faces(frames, backend=backend)
                jax.block_until_ready(res.landmarks)
                assert bool(np.all(res.valid)), "the benchmark frames must all have a face"
            first, steady = _time(run, cfg["repeats"])
            row[backend] = dict(ms_per_frame=1e3 * steady / batch, first_call_s=round(first, 2))
            if backend == "flax":
                row[backend]["compile_s"] = round(first - steady, 2)
        row["ratio_flax_over_litert"] = row["flax"]["ms_per_frame"] / row["litert"]["ms_per_frame"]
        out[f"batch_{batch}"] = row
    return out


SECTIONS = {"face": bench_face}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--repeats", type=int, default=get_config()["repeats"])
    ap.add_argument("--cache", action="store_true", help="use the persistent JAX compile cache")
    args = ap.parse_args()
    import jax
    if args.cache:
        jax.config.update("jax_compilation_cache_dir", os.environ.get("VASA3D_JAX_CACHE", "/tmp/jax_cache"))
    cfg = get_config() | {"repeats": args.repeats}
    result = {"machine": dict(cpu_count=os.cpu_count(), processor=platform.processor() or platform.machine(),
                              jax=jax.__version__, backend=jax.default_backend())}
    for name in args.sections.split(","):
        result[name] = SECTIONS[name](cfg)
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
