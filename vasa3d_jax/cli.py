"""The ``vasa3d`` command line.

    vasa3d demo  [--out DIR] [--portrait PHOTO [--face N] | --avatar PATH] [--audio FILE | --text T]
                 [--size 256]                       the main job: the astronaut photo (or PHOTO) -> avatar
                                                    (fitted once, then reused from the cache) -> the speech
                                                    (default: a sentence) on a turntable (MP4 with sound,
                                                    contact sheets with the photo)
    vasa3d speak (--audio FILE | --text T) --out DIR [--portrait PHOTO [--face N] | --avatar PATH]
                 [--camera front|orbit|az=DEG,el=DEG] [--size 256] [--seed 0]
                                                    any speech -> talking.mp4, contact_sheet.png, motion.npy;
                                                    the avatar: PHOTO fitted (or reused from the cache), an
                                                    avatar file, or the demo's astronaut (fitted once)
                 [--gaze YAW,PITCH] [--distance M] [--emotion happy=0.5,...]   VASA-1's controls
    vasa3d fit --portrait PHOTO --out DIR [--face N] [--preset quick|full|tiny] [--workdir DIR]
               [--coordinator HOST:PORT --num_processes N --process_id I]
                                                    one photo -> avatar.npz, contact_sheet.png, turntable.mp4,
                                                    metrics.json (resumable: rerun after an interruption);
                                                    across processes/hosts: one command per process
    vasa3d export --out DIR [--avatar PATH] [--audio FILE | --motion M.npy] [--size 512] [--seed 0]
                                                    avatar.ply (3DGS) + a web player of the talking avatar
    vasa3d view DIR [--port 8000]                   serves an exported folder on 127.0.0.1 (Ctrl-C stops)
    vasa3d drive --video CLIP --out DIR [--avatar PATH] [--side-by-side]
                                                    a face video's motion (motion encoder) -> the avatar
                                                    performing it with the clip's sound (driven.mp4)
    vasa3d encode --video FILE --out CLIP.npz [--smooth 0]
                                                    talking-face video -> motion clip (25 fps latents + 16 kHz audio)

Avatars fitted from photos by ``speak`` and ``demo`` are kept in ``$VASA3D_CACHE`` (default
``$XDG_CACHE_HOME/vasa3d``, else ``~/.cache/vasa3d``), under avatars/<photo content hash>-<preset>:
the first run with a photo fits (about 10 min with the quick preset on 2 CPU cores), later runs
reuse it. ``--face N`` picks the N-th largest face of a group photo (0, the default, is the
largest). Ctrl-C stops any command with one line and exit status 130; a fit resumes where it stopped
when the same command runs again.

All print the output folder and a JSON summary (frames, fps achieved, wall time). Compiled programs
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


def _check_inputs(args) -> None:
    """Files and choices that would fail late (after a fit) fail first."""
    for flag in ("portrait", "avatar", "audio"):
        value = getattr(args, flag, None)
        if value is not None and not pathlib.Path(value).is_file():
            raise FileNotFoundError(f"--{flag} {value}: no such file")
    if getattr(args, "portrait", None) and getattr(args, "avatar", None):
        raise ValueError("give --portrait (a photo to fit) or --avatar (a fitted avatar file), not both")
    if getattr(args, "audio", None) and getattr(args, "text", None):
        raise ValueError("give --audio (a speech file) or --text (a sentence to synthesise), not both")


def _speech(args):
    """(waveform 16 kHz, what it is) from --audio or --text (espeak-ng, the demo's voice)."""
    from vasa3d_jax import demo
    from vasa3d_jax.audio import load_speech

    if args.audio:
        return load_speech(args.audio), str(args.audio)
    if args.text is None:
        raise ValueError('give the speech: --audio FILE (wav, flac, mp3, ...) or --text "a sentence"')
    return demo.synthesize(args.text), f"text: {args.text}"


def _portrait_avatar(args, generator) -> tuple:
    """--avatar FILE, or --portrait PHOTO (default: the demo's astronaut) fitted into the cache or
    reused from it -> (Avatar, summary entries)."""
    from vasa3d_jax import demo
    from vasa3d_jax.portrait.api import cache_workdir, portrait_to_avatar

    if args.avatar:
        from vasa3d_jax.avatar.io import load_avatar
        return load_avatar(args.avatar), {"avatar": str(args.avatar)}  # the file carries its head
    photo = args.portrait if args.portrait else demo.astronaut()
    workdir = cache_workdir(photo, args.preset, args.face)
    result = portrait_to_avatar(photo, args.preset, workdir, generator=generator, face=args.face)
    return result.avatar, {"portrait": str(args.portrait or "the demo's astronaut"), "avatar_cache": str(workdir),
                           "reused_avatar": result.reused, "warnings": list(result.warnings)}


def _demo(args) -> int:
    from vasa3d_jax import demo
    from vasa3d_jax.portrait.api import cache_workdir

    t0 = time.perf_counter()
    _check_inputs(args)
    avatar = None
    if args.avatar:
        from vasa3d_jax.avatar.io import load_avatar
        avatar = load_avatar(args.avatar)
    waveform = None
    if args.audio:
        from vasa3d_jax.audio import load_speech
        waveform = load_speech(args.audio)
    workdir = None if avatar is not None else cache_workdir(
        args.portrait if args.portrait else demo.astronaut(), args.preset, args.face)
    return _report(demo.run(args.out, text=args.text, size=args.size, seed=args.seed, avatar=avatar,
                            portrait=args.portrait, preset=args.preset, workdir=workdir, face=args.face,
                            waveform=waveform), t0)


def _speak(args) -> int:
    import jax

    from vasa3d_jax.camera import CameraPath
    from vasa3d_jax.motion import load_default_model, parse_controls
    from vasa3d_jax.session import Talker, save_speech

    t0 = time.perf_counter()
    path = CameraPath.parse(args.camera)  # bad specs fail before any model loads
    _check_inputs(args)
    wav, said = _speech(args)  # bad audio fails before any fit
    generator = load_default_model()
    avatar, found = _portrait_avatar(args, generator)
    t_avatar = time.perf_counter() - t0
    talker = Talker(avatar, generator, size=args.size)
    controls = parse_controls(talker.generator, args.gaze, args.distance, args.emotion)
    speech = talker.speak(wav, camera_path=path, controls=controls, key=jax.random.key(args.seed))
    return _report({"audio": said, **found, "avatar_s": round(t_avatar, 2),
                    **save_speech(speech, args.out, "talking.mp4")}, t0)


def _fit(args) -> int:
    from vasa3d_jax import parallel

    # First: nothing may start JAX's backend before the processes join (parallel.initialize_distributed).
    parallel.initialize_distributed(args.coordinator, args.num_processes, args.process_id)
    from vasa3d_jax.portrait.api import fit_to_folder

    t0 = time.perf_counter()
    _check_inputs(args)
    summary = fit_to_folder(args.portrait, args.out, preset=args.preset, workdir=args.workdir, face=args.face)
    summary = {**summary, "total_s": round(time.perf_counter() - t0, 2)}
    print(json.dumps(summary))
    print(f"wrote {summary['avatar']}, {summary['contact_sheet']}, {summary['turntable']} and "
          f"{summary['metrics']} (folder: {summary['folder']})")
    return 0


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


def _drive(args) -> int:
    from vasa3d_jax.avatar.io import load_avatar
    from vasa3d_jax.avatar.template import template_avatar
    from vasa3d_jax.camera import CameraPath
    from vasa3d_jax.drive import drive

    t0 = time.perf_counter()
    path = CameraPath.parse(args.camera)
    avatar = load_avatar(args.avatar) if args.avatar else template_avatar()
    summary = drive(avatar, args.video, args.out, size=args.size, camera_path=path, side_by_side=args.side_by_side)
    return _report({"driving_video": str(args.video), **summary}, t0)


def _encode(args) -> int:
    from vasa3d_jax.face.clip import encode_video
    from vasa3d_jax.motion.data import write_clip

    summary = encode_video(args.video, smooth=args.smooth, backend=args.backend, progress=not args.quiet)
    summary = {"out": str(write_clip(args.out, **summary.pop("clip"))), **summary}
    if summary["missing_frames"]:
        print(f"vasa3d encode: no face in {summary['missing_frames']} of {summary['video_frames']} frames "
              f"(at {summary['missing_times_s']} s); their motion is interpolated", file=sys.stderr)
    print(json.dumps(summary))
    return 0


FACE_HELP = "which face of a group photo, by size: 0 the largest (default), 1 the next, ..."
PRESETS = ("quick", "full", "tiny")
PRESET_HELP = ("portrait fitting: quick ~10 min on 2 CPU cores; full: a GPU, every loss of the paper; "
               "tiny: seconds, a blurry avatar (tests)")


def _portrait_args(p, portrait_help: str) -> None:
    p.add_argument("--portrait", default=None, help=portrait_help)
    p.add_argument("--face", type=int, default=0, help=FACE_HELP)
    p.add_argument("--preset", default="quick", choices=PRESETS, help=PRESET_HELP)
    p.add_argument("--avatar", default=None, help="an avatar file to speak with (vasa3d fit's avatar.npz; any head)")


def _interrupted(args) -> str:
    fitting = args.command == "fit" or (args.command in ("speak", "demo") and not getattr(args, "avatar", None))
    return ("interrupted; rerun the same command to resume the fit where it stopped" if fitting
            else "interrupted")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vasa3d", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the astronaut photo -> avatar -> a spoken sentence on a turntable (MP4 + sheets)")
    p.add_argument("--out", default="out/demo", help="output folder")
    p.add_argument("--text", default=None, help="the sentence to speak (default: the demo's own)")
    p.add_argument("--audio", default=None, help="a speech file to speak instead of a sentence")
    p.add_argument("--size", type=int, default=256, help="image width and height in pixels (even)")
    p.add_argument("--seed", type=int, default=0, help="motion sampling seed")
    _portrait_args(p, "a photo to use instead of the astronaut (fitted once, then reused from the cache)")
    p.set_defaults(func=_demo)
    p = sub.add_parser("speak", help="speech (file or text) -> talking-head video with the sound track")
    p.add_argument("--audio", default=None, help="speech file (wav, flac, mp3, m4a, ...)")
    p.add_argument("--text", default=None, help="a sentence to speak (espeak-ng) when there is no --audio")
    p.add_argument("--out", required=True, help="output folder")
    _portrait_args(p, "the photo to speak with (fitted once, then reused from the cache; default: the "
                      "demo's astronaut)")
    p.add_argument("--camera", default="front", help="'front', 'orbit' or 'az=DEG,el=DEG' (default front)")
    p.add_argument("--size", type=int, default=256, help="image width and height in pixels (even)")
    p.add_argument("--seed", type=int, default=0, help="motion sampling seed")
    p.add_argument("--gaze", default=None, help="main gaze YAW,PITCH in degrees (default 0,0: at the camera)")
    p.add_argument("--distance", type=float, default=None, help="head-to-camera distance in metres (default: "
                   "the training mean)")
    p.add_argument("--emotion", default=None, help="emotion offset, e.g. happy=0.5 or sad=0.3,surprised=0.2")
    p.set_defaults(func=_speak)
    p = sub.add_parser("fit", help="one portrait photo -> a talking avatar (avatar.npz, previews, metrics.json)")
    p.add_argument("--portrait", required=True, help="the photo (jpg, png, ...): one person, face to the camera")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--face", type=int, default=0, help=FACE_HELP)
    p.add_argument("--preset", default="quick", choices=PRESETS, help=PRESET_HELP)
    p.add_argument("--workdir", default=None, help="stage cache and checkpoints (default: OUT/work); "
                   "rerunning with the same one resumes")
    p.add_argument("--coordinator", default=None, help="several processes (hosts): process 0's HOST:PORT "
                   "(default $JAX_COORDINATOR_ADDRESS); every process runs the same command")
    p.add_argument("--num_processes", type=int, default=None, help="how many processes (default $JAX_NUM_PROCESSES)")
    p.add_argument("--process_id", type=int, default=None, help="this process's index, 0 .. N-1 (default $JAX_PROCESS_ID)")
    p.set_defaults(func=_fit)
    p = sub.add_parser("export", help="avatar -> avatar.ply (3DGS) + the talking avatar as a web player")
    p.add_argument("--out", required=True, help="output folder (index.html, rig files, audio.wav, avatar.ply)")
    p.add_argument("--avatar", default=None,
                   help="avatar file from vasa3d_jax.avatar.io.save_avatar (default: the built-in template head)")
    p.add_argument("--audio", default=None, help="speech file: the motion is generated from it and it plays along")
    p.add_argument("--motion", default=None, help="(T, D) motion latents .npy (e.g. motion.npy of vasa3d speak)")
    p.add_argument("--size", type=int, default=512, help="the player's canvas size in pixels")
    p.add_argument("--seed", type=int, default=0, help="motion sampling seed (with --audio)")
    p.set_defaults(func=_export)
    p = sub.add_parser("view", help="serve an exported folder on 127.0.0.1 and print its URL")
    p.add_argument("folder", help="a folder written by vasa3d export")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port)")
    p.set_defaults(func=_view)
    p = sub.add_parser("drive", help="face video -> the avatar performing its motion, with its sound")
    p.add_argument("--video", required=True, help="driving face video (mp4, mov, ...)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--avatar", default=None, help="avatar file (default: the built-in template head)")
    p.add_argument("--camera", default="front", help="'front', 'orbit' or 'az=DEG,el=DEG' (default front)")
    p.add_argument("--size", type=int, default=256, help="image width and height in pixels (even)")
    p.add_argument("--side-by-side", action="store_true", help="put the driving video left of the avatar")
    p.set_defaults(func=_drive)
    p = sub.add_parser("encode", help="talking-face video -> motion clip for training (vasa3d_jax/motion/data.py)")
    p.add_argument("--video", required=True, help="video file (mp4, mov, ...); its sound track becomes the clip's audio")
    p.add_argument("--out", required=True, help="output .npz clip")
    p.add_argument("--smooth", type=float, default=0.0, help="temporal smoothing weight (0: none, ~1: mild)")
    p.add_argument("--backend", default="flax", choices=("flax", "litert"), help="face networks")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_encode)
    args = parser.parse_args(argv)
    try:
        if args.command != "view":  # serving files needs no JAX
            _enable_compilation_cache()
            runtime.keep_freed_memory()
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's status for SIGINT (128 + 2)
        print(f"\nvasa3d {args.command}: {_interrupted(args)}", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f"vasa3d {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
