"""Benchmark of the renderer's XLA path on head-like scenes (issue 2, section 4).

Command (from the repository root, venv active):

    python experiments/bench_render.py                 # all three scenes
    python experiments/bench_render.py --scenes 5k_256 --runs 5

Scenes (``tests/render/render_scenes.py::head_scene``): means uniform in the solid ellipsoid with
radii (0.09, 0.12, 0.11) m, scales log-uniform in [1, 6] mm, opacities uniform in [0.3, 1], random
rotations and RGB colours; camera 0.6 m in front, focal 1.5 x image size, centred principal point.
For each scene it prints one JSON line: forward ms and forward+backward ms (median of ``--runs``
runs after compilation, and the fastest run, as the machine is a shared VM; the backward is the
gradient with respect to every Gaussian attribute and the background of a random linear loss),
compile seconds, XLA's temp memory of the compiled programs and the process's peak RSS, visible
Gaussians, intersections and the most Gaussians in one tile; for scenes where N H W <= 5e8, the same forward figures for the dense reference
(``vasa3d_jax.render.dense_render``) and the speed ratio. The last line is one JSON object with a
``scenes`` list, plus the load average while it ran (the machine is shared) and whether glibc
keeps freed memory (``vasa3d_jax.runtime.keep_freed_memory``, on unless ``--default-malloc``: each
run's temporaries otherwise come from fresh pages).

Goals on the 2-core CPU (XLA path): 5k_256 fwd <= 10 ms, fwd+bwd <= 30 ms; 20k_512 50 / 150 ms;
100k_512 150 / 400 ms (OpenSplat's C++ CPU rasteriser: 32/55, 146/270, 333/462 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "render"))
from render_scenes import head_scene  # noqa: E402  (shared with the tests)

from vasa3d_jax import runtime  # noqa: E402
from vasa3d_jax.render import dense_render, render, required_capacity  # noqa: E402

SCENES = {"5k_256": (5_000, 256), "20k_512": (20_000, 512), "100k_512": (100_000, 512)}
DENSE_LIMIT = 5e8  # N * H * W above which the O(N H W) dense reference takes minutes: skipped


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.scenes = list(SCENES)
    c.runs = 7
    c.seed = 0
    c.capacity_margin = 1.1  # capacity = margin x what the scene needs (required_capacity)
    return c


def _timed(fn, *args, runs):
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append((time.perf_counter() - t0) * 1e3)
    mem = compiled.memory_analysis()
    temp = getattr(mem, "temp_size_in_bytes", None) if mem is not None else None
    return float(np.median(times)), compile_s, temp, float(np.min(times))


def bench_scene(name: str, cfg) -> dict:
    n, size = SCENES[name]
    g, cam = head_scene(jax.random.PRNGKey(cfg.seed), n, size)
    bg = jnp.zeros(3)
    capacity = int(required_capacity(g, cam) * cfg.capacity_margin) + 1024
    ct = jax.random.normal(jax.random.PRNGKey(cfg.seed + 1), (size, size, 3))

    def fwd(g, bg):
        o = render(g, cam, bg, backend="xla", capacity=capacity)
        return o.rgb, o.alpha, o.num_visible, o.num_isects, o.max_tile_count, o.isect_overflow

    def loss(g, bg):
        return jnp.sum(render(g, cam, bg, backend="xla", capacity=capacity).rgb * ct)

    fwd_bwd = jax.grad(loss, argnums=(0, 1))
    fwd_ms, fwd_compile, fwd_temp, fwd_min = _timed(fwd, g, bg, runs=cfg.runs)
    fb_ms, fb_compile, fb_temp, fb_min = _timed(fwd_bwd, g, bg, runs=cfg.runs)
    _, _, vis, isects, max_tile, overflow = jax.jit(fwd)(g, bg)
    row = dict(name=name, gaussians=n, size=size, fwd_ms=round(fwd_ms, 2), fwd_bwd_ms=round(fb_ms, 2),
               fwd_ms_min=round(fwd_min, 2), fwd_bwd_ms_min=round(fb_min, 2),
               compile_s=round(fwd_compile + fb_compile, 1), fwd_compile_s=round(fwd_compile, 1),
               fwd_bwd_compile_s=round(fb_compile, 1), xla_temp_mb_fwd=_mb(fwd_temp),
               xla_temp_mb_fwd_bwd=_mb(fb_temp), visible=int(vis), isects=int(isects), capacity=capacity,
               isect_overflow=int(overflow), max_per_tile=int(max_tile))
    if n * size * size <= DENSE_LIMIT:
        dense_ms, dense_compile, _, _ = _timed(lambda g, bg: dense_render(g, cam, bg)[0], g, bg, runs=max(1, cfg.runs // 3))
        row.update(dense_fwd_ms=round(dense_ms, 1), dense_compile_s=round(dense_compile, 1),
                   dense_over_xla_fwd=round(dense_ms / fwd_ms, 1))
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return row


def _mb(x):
    return None if x is None else round(x / 2**20, 1)


def main():
    cfg = get_config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=cfg.scenes, choices=list(SCENES))
    parser.add_argument("--runs", type=int, default=cfg.runs)
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc malloc as it is (default: runtime.keep_freed_memory(), as the CLI does)")
    args = parser.parse_args()
    tuned = False if args.default_malloc else runtime.keep_freed_memory()
    cfg.scenes, cfg.runs = args.scenes, max(5, args.runs)
    rows = []
    for name in cfg.scenes:
        row = bench_scene(name, cfg)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(json.dumps(dict(scenes=rows, backend=jax.default_backend(), cpu_count=os.cpu_count(), keep_freed_memory=tuned,
                          loadavg=[round(x, 2) for x in os.getloadavg()])))


if __name__ == "__main__":
    main()
