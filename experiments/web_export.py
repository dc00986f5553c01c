"""Export the talking template head for the web and measure it in headless Chromium (issue 17).

Command (from the repository root, venv active; needs chromium and `make setup`'s web/node_modules):

    python experiments/web_export.py --out out/web_demo            # the demo sentence, 512 px player

Steps: espeak-ng speaks the demo sentence (``vasa3d_jax.demo.SENTENCE``, ~5 s); ``export_web``
generates the motion from it (shipped motion model, seed 0) and writes the web folder (rig, frames,
audio.wav, avatar.ply, player); headless Chromium (SwiftShader, i.e. software WebGL on the CPU) opens
it over HTTP, seeks frames and compares them with ``render`` from the same front camera (PSNR), then
plays for ``--play-s`` seconds and reads the player's FPS counter. Prints one JSON object: sizes
(kB per second of speech for the per-frame rig and for the audio), residual rank, PSNR per frame,
FPS, and the load average (the machine is shared). Screenshots go to OUT/shots/.

Reaches (2-core shared CPU, template head, 5828 Gaussians): rig 440 kB/s raw, ~130 kB/s gzipped, audio 32 kB/s;
PSNR > 50 dB at 512 px; a few FPS under SwiftShader (software rendering; a GPU browser is far faster).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import pathlib
import time

import jax
import numpy as np
from PIL import Image


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="out/web_demo")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--play-s", type=float, default=4.0)
    ap.add_argument("--frames", default="0,40,80", help="frames compared with render()")
    args = ap.parse_args(argv)

    from vasa3d_jax import demo, export
    from vasa3d_jax.avatar.render import FrameRenderer
    from vasa3d_jax.avatar.template import template_avatar
    from vasa3d_jax.camera import CameraPath
    from vasa3d_jax.constants import FPS
    from vasa3d_jax.export.headless import Chromium
    from vasa3d_jax.export.serve import serve

    out = pathlib.Path(args.out)
    wav = demo.synthesize(demo.SENTENCE)
    avatar = template_avatar()
    t0 = time.perf_counter()
    summary = export.export_web(avatar, out, audio=wav, key=jax.random.key(0), size=args.size)
    export_s = time.perf_counter() - t0
    rig = export.read_web(out)
    frames = [min(int(k), rig.frames - 1) for k in args.frames.split(",")]

    renderer = FrameRenderer(avatar, args.size)
    path = CameraPath("front")
    from vasa3d_jax.audio import speech_features
    from vasa3d_jax.motion import generate, load_default_model

    gen = load_default_model()  # the motion export_web generated (same model, features and key)
    motion = generate(gen, speech_features(wav, fps=FPS, encoder=gen.feature_encoder), None,
                      jax.random.key(0), gen.sampler)
    renderer.prepare(motion, path, len(motion))
    shots = out / "shots"
    shots.mkdir(exist_ok=True)
    url, server = serve(out, port=0, background=True)
    result = {}
    with Chromium(args.size + 64, args.size + 200) as chrome:
        chrome.open(url)
        chrome.evaluate("new Promise((ok, fail) => { const f = () => window.player ? "
                        "window.player.ready.then(() => ok(true), fail) : setTimeout(f, 50); f(); })", timeout=180)
        psnr = {}
        for k in frames:
            chrome.evaluate(f"player.seek({k})")
            data = chrome.evaluate("document.getElementById('view').toDataURL('image/png')")
            got = np.asarray(Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1]))).convert("RGB"))
            want = np.clip(np.round(renderer(motion[k], path.viewmat(k, len(motion))) * 255), 0, 255).astype(np.uint8)
            mse = np.mean((got / 255.0 - want / 255.0) ** 2)
            psnr[k] = round(float(10 * np.log10(1 / max(mse, 1e-12))), 2)
            Image.fromarray(np.concatenate([got, want], 1)).save(shots / f"player_vs_render_{k}.png")
        before = chrome.evaluate("player.renders")
        t = time.perf_counter()
        chrome.evaluate("player.seek(0), player.play()")
        time.sleep(args.play_s)
        played = chrome.evaluate("[player.fps, player.renders, player.renderedFrame, player.glRenderer]")
        wall = time.perf_counter() - t
        (shots / "page.png").write_bytes(chrome.screenshot())
        result = {"psnr_db": psnr, "fps_last_second": played[0], "fps_mean": round((played[1] - before) / wall, 2),
                  "wall_s": round(wall, 2),
                  "frame_reached": played[2], "webgl": played[3], "console_errors": chrome.errors()}
    server.shutdown()
    summary.pop("sizes", None)
    report = {**summary, "export_s": round(export_s, 1), **result, "load_avg": os.getloadavg()[0]}
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
