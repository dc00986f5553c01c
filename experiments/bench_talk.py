"""End-to-end speed of the talking head (issue 16 §1): audio in, MP4-encoded frames out.

Command (from the repository root, venv active; ``--quick`` for one small case):

    python experiments/bench_talk.py                              # every avatar x size x camera
    python experiments/bench_talk.py --avatars template --sizes 256 --cameras front --seconds 4

Avatars: ``template`` (the built-in head, one Gaussian per triangle, ~5.8k live), ``dense``: the
template head with ``--per_triangle`` (default 5, ~29k live) Gaussians per triangle and full-size
residual networks (4 x 256, output layer zero as before fitting), and ``portrait``: a fitted
portrait avatar file (``--portrait_avatar``, default ``out/demo/avatar.npz``, which ``make demo``
writes; ~19k live Gaussians and the quick preset's small residual networks on the astronaut).
Per case one JSON line, then one JSON object with all:

* ``fps_end_to_end``: frames / wall seconds of ``Talker.speak`` + ``save_speech`` (speech features,
  motion generation, deformation, rendering, H.264 + AAC encoding, contact sheet), a second run in
  the process (compiled); ``realtime`` = fps_end_to_end / 25.
* ``ms_per_frame``: each stage alone per frame (``features``, ``motion``, ``render`` = deform +
  render, batched, ``encode`` = H.264 of ready frames); their sum exceeds the end-to-end time per
  frame when rendering and encoding overlap (``video.in_background``).
* ``compile_s``: the first run's extra wall time over the second (compilation; the persistent cache
  ``$VASA3D_JAX_CACHE`` makes a second process's first run fast: run this twice to see it).
* ``stream_first_frame_s``: from handing ``Talker.stream`` the first window's audio (W frames, in
  one chunk) to receiving the first frame, in a second stream (compiled); ``stream_fps``: frames/s
  of the stream after it, the audio being handed over as fast as it is consumed;
  ``gaussians``: live Gaussians; ``capacity``: the intersection capacity in use.

``load_avg`` is the 1-minute load average at the start and end of each case: the machine is a
shared 2-core VM, and figures are only comparable at similar load.
Goals (2 cores, idle; issue 16): 256 fitted avatar >= 25 fps end to end, 512 >= 10, first frame
<= 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import tempfile
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from vasa3d_jax import runtime, session, video
from vasa3d_jax.avatar import gaussians as gs
from vasa3d_jax.avatar.avatar import AvatarConfig, GaussianAvatar
from vasa3d_jax.avatar.io import Avatar
from vasa3d_jax.avatar.render import FrameRenderer, RenderStats, render_motion
from vasa3d_jax.avatar.template import (TEMPLATE_NORMAL_SCALE, TEMPLATE_OPACITY, TEMPLATE_PLANE_SCALE,
                                        skin_colors, template_avatar)
from vasa3d_jax.constants import FPS, SAMPLE_RATE
from vasa3d_jax.head import template_head
from vasa3d_jax.motion import generate, load_default_model
from vasa3d_jax.motion.data import speech_feature_fn
from vasa3d_jax.motion_space import MotionSpace


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        avatars=("template", "portrait"), sizes=(256, 512), cameras=("front", "orbit"),
        seconds=6.0,  # speech length per run (150 frames at 25 fps)
        per_triangle=5,  # the dense avatar's Gaussians per triangle
        portrait_avatar="out/demo/avatar.npz",  # a fitted portrait avatar (make demo writes this one)
        seed=0,
    ))


def dense_avatar(per_triangle: int, seed: int = 0) -> Avatar:
    """The template head with ``per_triangle`` flat Gaussians per triangle, skin-coloured, in-plane
    size shrunk by 1/sqrt(per_triangle) (the same coverage), default-size residual networks."""
    head = template_head()
    model = GaussianAvatar(head, MotionSpace.builtin(), AvatarConfig(per_triangle=per_triangle))
    params = model.init(jax.random.key(seed), colors=skin_colors(head))
    g, live = params["gaussians"], params["binding"].active
    plane = TEMPLATE_PLANE_SCALE / np.sqrt(per_triangle)
    shrink = jnp.log(jnp.asarray([plane, TEMPLATE_NORMAL_SCALE, plane]))
    g = g.replace(opacity_logits=jnp.where(live, gs.logit(TEMPLATE_OPACITY), g.opacity_logits),
                  log_scales=jnp.where(live[:, None], g.log_scales + shrink, g.log_scales))
    return Avatar(model, {**params, "gaussians": g})


def portrait_avatar(path: str) -> Avatar:
    from vasa3d_jax.avatar.io import load_avatar

    if not pathlib.Path(path).is_file():
        raise FileNotFoundError(f"no fitted avatar at {path}: run `make demo` (writes out/demo/avatar.npz) "
                                "or `vasa3d fit --portrait PHOTO --out DIR` and pass --portrait_avatar DIR/avatar.npz")
    return load_avatar(path)


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """A voiced-like 16 kHz signal (120 Hz harmonics under a 4 Hz syllable envelope, some noise)."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wav = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 8))
    wav = wav * (0.5 - 0.5 * np.cos(2 * np.pi * 4 * t))
    wav += 0.05 * np.random.default_rng(seed).normal(size=t.shape)
    return (0.3 * wav / np.max(np.abs(wav))).astype(np.float32)


def run_case(avatar: Avatar, name: str, size: int, camera: str, wav: np.ndarray, seed: int) -> dict:
    gen = load_default_model()
    talker = session.Talker(avatar, gen, size=size)
    key = jax.random.key(seed)
    load0 = os.getloadavg()[0]
    out = pathlib.Path(tempfile.mkdtemp(prefix="bench_talk_"))

    def end_to_end():
        t0 = time.perf_counter()
        summary = session.save_speech(talker.speak(wav, camera, key=key), out)
        return time.perf_counter() - t0, summary

    cold_s, _ = end_to_end()
    warm_s, summary = end_to_end()
    frames = summary["frames"]

    # ---- stages alone ------------------------------------------------------------------------
    t0 = time.perf_counter()
    feats = speech_feature_fn(gen.feature_encoder)(wav)
    features_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    motion = generate(gen, feats, None, key, talker.sampler)
    motion_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    images = list(render_motion(avatar, motion, camera, size))
    render_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    video.write_mp4(out / "encode_only.mp4", images, fps=FPS, audio=wav)
    encode_s = time.perf_counter() - t0

    # ---- streaming: the first window's audio in one chunk, then the rest window by window --------
    w = gen.config.window * SAMPLE_RATE // int(FPS)
    handed = {}

    def chunks():
        for i in range(0, len(wav), w):
            if i == 0:
                handed["t"] = time.perf_counter()
            yield wav[i:i + w]

    for _ in talker.stream(chunks(), camera, key=key):  # compiles the stream's feature shapes
        pass
    stats = RenderStats()
    first, t_end, n = None, None, 0
    for _ in talker.stream(chunks(), camera, key=key, stats=stats):
        n += 1
        if first is None:
            first = time.perf_counter() - handed["t"]
            t_first = time.perf_counter()
        t_end = time.perf_counter()
    stream_fps = (n - 1) / (t_end - t_first) if n > 1 else 0.0

    ms = lambda s: round(1000 * s / frames, 2)  # noqa: E731
    result = dict(
        avatar=name, size=size, camera=camera, frames=frames, audio_s=round(len(wav) / SAMPLE_RATE, 2),
        gaussians=int(avatar.params["binding"].active.sum()), capacity=summary["capacity"],
        residual_skipped=not FrameRenderer(avatar, size).residual,
        fps_end_to_end=round(frames / warm_s, 2), realtime=round(frames / warm_s / FPS, 3),
        ms_per_frame=dict(features=ms(features_s), motion=ms(motion_s), render=ms(render_s), encode=ms(encode_s),
                          end_to_end=ms(warm_s)),
        compile_s=round(max(cold_s - warm_s, 0.0), 2), first_run_s=round(cold_s, 2),
        stream_first_frame_s=round(first, 3), stream_fps=round(stream_fps, 2),
        load_avg=[round(load0, 2), round(os.getloadavg()[0], 2)])
    return result


def main(config) -> dict:
    runtime.keep_freed_memory()
    wav = speech_like(config.seconds, config.seed)
    avatars = {"template": lambda: template_avatar(), "dense": lambda: dense_avatar(config.per_triangle),
               "portrait": lambda: portrait_avatar(config.portrait_avatar)}
    t0 = time.perf_counter()
    cases = []
    for name in config.avatars:
        avatar = avatars[name]()
        for size in config.sizes:
            for camera in config.cameras:
                case = run_case(avatar, name, size, camera, wav, config.seed)
                print(json.dumps(case), flush=True)
                cases.append(case)
    return dict(cases=cases, total_s=round(time.perf_counter() - t0, 1),
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                cpus=os.cpu_count(), devices=str(jax.devices()[0].platform),
                cache=jax.config.jax_compilation_cache_dir)


if __name__ == "__main__":
    cfg = get_config()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--avatars", nargs="+", default=list(cfg.avatars), choices=["template", "dense", "portrait"])
    parser.add_argument("--sizes", nargs="+", type=int, default=list(cfg.sizes))
    parser.add_argument("--cameras", nargs="+", default=list(cfg.cameras))
    parser.add_argument("--seconds", type=float, default=cfg.seconds)
    parser.add_argument("--per_triangle", type=int, default=cfg.per_triangle)
    parser.add_argument("--portrait_avatar", default=cfg.portrait_avatar, help="avatar.npz of a fitted portrait")
    parser.add_argument("--quick", action="store_true", help="template, 256, front, 2 s")
    a = parser.parse_args()
    cfg.avatars, cfg.sizes, cfg.cameras = tuple(a.avatars), tuple(a.sizes), tuple(a.cameras)
    cfg.seconds, cfg.per_triangle, cfg.portrait_avatar = a.seconds, a.per_triangle, a.portrait_avatar
    if a.quick:
        cfg.avatars, cfg.sizes, cfg.cameras, cfg.seconds = ("template",), (256,), ("front",), 2.0
    cache = os.environ.get("VASA3D_JAX_CACHE",
                           str(pathlib.Path.home() / ".cache" / "vasa3d_jax" / "jax"))
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    print(json.dumps(main(cfg)))
