"""The ``vasa3d`` command line.

    vasa3d demo  [--out DIR] [--text T] [--size 256]  the main job: a spoken sentence, the built-in head
                                                    talking on a turntable (MP4 with sound + contact sheet)
    vasa3d speak --audio FILE --out DIR [--avatar PATH] [--camera front|orbit|az=DEG,el=DEG]
                 [--size 256] [--seed 0]            any speech -> talking.mp4, contact_sheet.png, motion.npy

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
    args = parser.parse_args(argv)
    _enable_compilation_cache()
    runtime.keep_freed_memory()
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"vasa3d {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
