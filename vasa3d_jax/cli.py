"""The ``vasa3d`` command line.

    vasa3d demo  [--out DIR] [--text T] [--size 256]  the main job: a spoken sentence, the built-in head
                                                    talking on a turntable (MP4 with sound + contact sheet)
    vasa3d speak --audio FILE --out DIR [--avatar PATH] [--camera front|orbit|az=DEG,el=DEG]
                 [--size 256] [--seed 0]            any speech -> talking.mp4, contact_sheet.png, motion.npy
    vasa3d export --out DIR [--avatar PATH] [--audio FILE | --motion M.npy] [--size 512] [--seed 0]
                                                    avatar.ply (3DGS) + a web player of the talking avatar
    vasa3d view DIR [--port 8000]                   serves an exported folder on 127.0.0.1 (Ctrl-C stops)

Both print the output folder and a JSON summary (frames, fps achieved, wall time). Compiled programs
are kept in a persistent cache (``$VASA3D_JAX_CACHE``, default ``~/.cache/vasa3d_jax/jax``), so a
second run skips most compilation, and glibc keeps freed memory for reuse
(``vasa3d_jax.runtime.keep_freed_memory``).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

from vasa3d_jax import runtime


def _enable_compilation_cache() -> None:
    import jax

    if jax.config.jax_compilation_cache_dir:  # already chosen (e.g. by the test suite)
        return
    default = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "vasa3d_jax" / "jax"
    jax.config.update("jax_compilation_cache_dir", os.environ.get("VASA3D_JAX_CACHE", str(default)))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def _report(summary: dict, t0: float) -> int:
    summary = {**summary, "total_s": round(time.perf_counter() - t0, 2)}
    print(json.dumps(summary))
    print(f"wrote {summary['video']}, {summary['contact_sheet']} and {summary['motion']} "
          f"(folder: {summary['folder']})")
    return 0


def _demo(args) -> int:
    from vasa3d_jax import demo

    t0 = time.perf_counter()
    return _report(demo.run(args.out, text=args.text, size=args.size, seed=args.seed), t0)


def _speak(args) -> int:
    import jax

    from vasa3d_jax import pipeline
    from vasa3d_jax.avatar.io import load_avatar
    from vasa3d_jax.avatar.template import template_avatar
    from vasa3d_jax.camera import CameraPath
    from vasa3d_jax.motion import load_default_model

    t0 = time.perf_counter()
    path = CameraPath.parse(args.camera)  # bad specs fail before any model loads
    wav = pipeline.load_waveform(args.audio)
    avatar = load_avatar(args.avatar) if args.avatar else template_avatar()  # the file carries its head
    talker = pipeline.Talker(avatar, load_default_model(), size=args.size)
    speech = talker.speak(wav, camera_path=path, key=jax.random.key(args.seed))
    return _report({"audio": str(args.audio), **pipeline.save_speech(speech, args.out, "talking.mp4")}, t0)


def _export(args) -> int:
    import jax
    import numpy as np

    from vasa3d_jax import export
    from vasa3d_jax.avatar.io import load_avatar
    from vasa3d_jax.avatar.template import template_avatar

    t0 = time.perf_counter()
    if (args.audio is None) == (args.motion is None):
        raise ValueError("give one of --audio (speech; the motion is generated) or --motion (a (T, D) .npy, "
                         "e.g. the motion.npy of `vasa3d speak`)")
    motion = None
    if args.motion is not None:
        if not pathlib.Path(args.motion).is_file():
            raise FileNotFoundError(f"motion file {args.motion!r} not found")
        motion = np.load(args.motion)
    avatar = load_avatar(args.avatar) if args.avatar else template_avatar()
    summary = export.export_web(avatar, args.out, motion=motion, audio=args.audio, key=jax.random.key(args.seed),
                                size=args.size)
    summary.pop("sizes", None)
    print(json.dumps({**summary, "total_s": round(time.perf_counter() - t0, 2)}))
    print(f"wrote {summary['index']} and {summary['ply']}; play it with: vasa3d view {args.out}")
    return 0


def _view(args) -> int:
    from vasa3d_jax.export.serve import serve

    serve(args.folder, port=args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vasa3d", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the built-in head speaks a sentence on a turntable (MP4 + contact sheet)")
    p.add_argument("--out", default="out/demo", help="output folder")
    p.add_argument("--text", default=None, help="the sentence to speak (default: the demo's own)")
    p.add_argument("--size", type=int, default=256, help="image width and height in pixels (even)")
    p.add_argument("--seed", type=int, default=0, help="motion sampling seed")
    p.set_defaults(func=_demo)
    p = sub.add_parser("speak", help="speech file -> talking-head video with the sound track")
    p.add_argument("--audio", required=True, help="speech file (wav, flac, mp3, m4a, ...)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--avatar", default=None,
                   help="avatar file from vasa3d_jax.avatar.io.save_avatar, any head (default: the built-in template head)")
    p.add_argument("--camera", default="front", help="'front', 'orbit' or 'az=DEG,el=DEG' (default front)")
    p.add_argument("--size", type=int, default=256, help="image width and height in pixels (even)")
    p.add_argument("--seed", type=int, default=0, help="motion sampling seed")
    p.set_defaults(func=_speak)
    p = sub.add_parser("export", help="avatar -> avatar.ply (3DGS) + the talking avatar as a web player")
    p.add_argument("--out", required=True, help="output folder (index.html, rig files, audio.wav, avatar.ply)")
    p.add_argument("--avatar", default=None,
                   help="avatar file from vasa3d_jax.pipeline.save_avatar (default: the built-in template head)")
    p.add_argument("--audio", default=None, help="speech file: the motion is generated from it and it plays along")
    p.add_argument("--motion", default=None, help="(T, D) motion latents .npy (e.g. motion.npy of vasa3d speak)")
    p.add_argument("--size", type=int, default=512, help="the player's canvas size in pixels")
    p.add_argument("--seed", type=int, default=0, help="motion sampling seed (with --audio)")
    p.set_defaults(func=_export)
    p = sub.add_parser("view", help="serve an exported folder on 127.0.0.1 and print its URL")
    p.add_argument("folder", help="a folder written by vasa3d export")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port)")
    p.set_defaults(func=_view)
    args = parser.parse_args(argv)
    if args.command != "view":  # serving files needs no JAX
        _enable_compilation_cache()
        runtime.keep_freed_memory()
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"vasa3d {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
