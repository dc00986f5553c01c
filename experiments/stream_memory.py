"""Streaming a long recording keeps memory flat (issue 16 §3): peak RSS after 1 and 10 minutes.

Command (from the repository root, venv active):

    python experiments/stream_memory.py                     # --minutes 1 10 --size 64

For each length, a fresh process streams that many minutes of speech-like audio (0.5 s chunks, as
from a microphone) through ``session.record_stream`` (features, motion, rendering, MP4 with sound)
with the shipped motion model and the template head, and reports its peak resident memory
(``ru_maxrss``), frames and wall time. Memory must not grow with the length: the stream keeps
one window of audio plus ``left_context_s``, one block of motion and a bounded frame queue. Prints
one JSON line per length, then ``{"runs": [...], "growth_mb": peak(last) - peak(first)}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def one_run(minutes: float, size: int, chunk_s: float) -> dict:
    import jax

    from vasa3d_jax import runtime, session
    from vasa3d_jax.constants import SAMPLE_RATE

    runtime.keep_freed_memory()
    cache = os.environ.get("VASA3D_JAX_CACHE")
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
    talker = session.Talker.default(size=size)
    n = int(minutes * 60 * SAMPLE_RATE)
    step = int(chunk_s * SAMPLE_RATE)

    def chunks():  # speech-like audio made chunk by chunk: the input itself never sits in memory
        rng = np.random.default_rng(0)
        for i in range(0, n, step):
            t = np.arange(i, min(i + step, n)) / SAMPLE_RATE
            env = 0.5 - 0.5 * np.cos(2 * np.pi * 4 * t)
            wav = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 6)) * env + 0.05 * rng.normal(size=t.shape)
            yield (0.2 * wav).astype(np.float32)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        summary = session.record_stream(talker, chunks(), os.path.join(tmp, "long.mp4"))
    return dict(minutes=minutes, size=size, frames=summary["frames"], wall_s=round(time.perf_counter() - t0, 1),
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                load_avg=round(os.getloadavg()[0], 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--chunk_s", type=float, default=0.5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.child:
        print(json.dumps(one_run(a.minutes[0], a.size, a.chunk_s)))
        return
    runs = []
    for minutes in a.minutes:  # a fresh process per length: ru_maxrss is a process's peak
        out = subprocess.run([sys.executable, __file__, "--child", "--minutes", str(minutes), "--size", str(a.size),
                              "--chunk_s", str(a.chunk_s)], check=True, capture_output=True, text=True)
        run = json.loads(out.stdout.strip().splitlines()[-1])
        print(json.dumps(run), flush=True)
        runs.append(run)
    print(json.dumps({"runs": runs, "growth_mb": round(runs[-1]["peak_rss_mb"] - runs[0]["peak_rss_mb"], 1)}))


if __name__ == "__main__":
    main()
