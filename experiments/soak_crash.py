"""The long-process XLA:CPU crash (issue 23 §5): its smallest reproducer and the suspects toggled.

    PYTHONPATH=. python experiments/soak_crash.py maps    [--cache] [--keep_freed_memory] [--thread]
    PYTHONPATH=. python experiments/soak_crash.py exhaust [--cache] [--keep_freed_memory] [--thread]
                                                          [--no_guard] [--headroom 600] [--programs 400]
    PYTHONPATH=. python experiments/soak_crash.py soak    [--no_cache] [--keep_freed_memory] [--no_thread]
                                                          [--no_guard] [--headroom 10000]

Each prints one JSON line.

``maps``: what a compiled program costs in memory mappings (``/proc/self/maps`` lines): N small
distinct programs are compiled (or, with ``--cache``, compiled into a fresh persistent cache, the
in-memory caches cleared and the programs loaded back from it, as a second run in the same process
does), then ``jax.clear_caches()`` drops them. XLA:CPU JIT-links every executable into mappings of
its own (code, read-only data, data), and they live as long as the executable.

``exhaust``: the crash itself. Linux refuses a process more than ``vm.max_map_count`` mappings
(65530 by default). A child process first takes all but ``--headroom`` of them (pages of one
reservation with alternating protections, each its own mapping: what thousands of live executables
do in a long process), then compiles up to ``--programs`` small programs. Without the guard
(``--no_guard`` removes ``vasa3d_jax.runtime.bound_memory_maps``, which importing vasa3d_jax
installs) LLVM's JIT linker gets ENOMEM from mmap (``LLVM compilation error: Cannot allocate
memory``) and the process dies with SIGSEGV inside ``backend_compile_and_load`` (or in the
persistent cache's load, with ``--cache``), whichever thread compiles. With the guard, JAX's
in-memory executable caches are dropped when the process nears the limit, and compiling goes on.

``soak``: the slow soak test (tests/test_soak.py: two portraits fitted, saved, reloaded and spoken
with, in one process, its mapping table first filled to ``--headroom`` below the limit, as the long
slow-suite process had filled it by the time the demo test ran) in a child process, with the
suspects toggled.

Measured (2026-12-08, this shared 2-core VM, jax/jaxlib 0.10.2, vm.max_map_count 65530):

- ``maps`` (100 programs): 2.96 mappings per compiled program, 2.91 per program loaded back from
  the persistent cache, the same in a worker thread and with ``--keep_freed_memory``;
  ``jax.clear_caches()`` gives every one of them back.
- ``exhaust --no_guard`` (600 left): SIGSEGV after "LLVM compilation error: Cannot allocate memory"
  in every variant: in ``backend_compile_and_load`` (plain, ``--thread``: in the worker,
  ``--keep_freed_memory``) and in ``compilation_cache.get_executable_and_time`` with ``--cache``
  (loading a program this process wrote: the demo test's second run). With the guard: all 300
  programs run.
- ``soak --no_guard`` (10,000 left): SIGABRT, "LLVM ERROR: Unable to allocate section memory!"
  (XLA's contiguous_section_memory_manager) in ``backend_compile_and_load`` under the first
  portrait fit, twice; the same with ``--no_cache`` and with ``--no_thread`` (SIGABRT), and with
  ``--keep_freed_memory`` a SIGSEGV in ``compilation_cache.get_executable_and_time`` (loading from
  the persistent cache), the slow suite's old symptom. With the guard: the test passes, twice (13 and 20 minutes on the loaded
  VM; the guard cleared JAX's caches 9 times). Alone (no filling) the soak test's process peaked at
  19,659 mappings and passed in 575 s.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import os
import subprocess
import sys
import tempfile
import threading


def map_count() -> int:
    with open("/proc/self/maps", "rb") as f:
        return f.read().count(b"\n")


def _setup(args) -> None:
    import jax

    from vasa3d_jax import runtime  # importing vasa3d_jax installs the guard

    if not args.guard:
        jax.monitoring.unregister_scalar_listener(runtime._guard)

    if args.cache:
        jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="soak_cache_"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if args.keep_freed_memory:
        runtime.keep_freed_memory()


def _programs(n: int, offset: int = 0):
    """n distinct small programs (each constant changes the HLO, so each compiles on its own)."""
    import jax
    import jax.numpy as jnp

    return [jax.jit(lambda v, i=i: jnp.sin(v * i) + jnp.cos(v) * i) for i in range(offset, offset + n)]


def _run(fns, x, thread: bool):
    def work():
        for f in fns:
            f(x).block_until_ready()

    if not thread:
        return work()
    t = threading.Thread(target=work)
    t.start()
    t.join()


def maps(args) -> dict:
    import jax
    import jax.numpy as jnp

    _setup(args)
    x = jnp.ones((64,), jnp.float32)
    _run(_programs(1, 10 ** 6), x, args.thread)  # the backend's own mappings first
    m0 = map_count()
    fns = _programs(args.programs)
    _run(fns, x, args.thread)
    m1 = map_count()
    out = {"compiled": args.programs, "maps_per_compiled_program": round((m1 - m0) / args.programs, 2)}
    del fns
    jax.clear_caches()
    gc.collect()
    out["maps_left_after_clear_caches"] = map_count() - m0
    if args.cache:  # the same programs again: every one is a persistent-cache hit now
        fns = _programs(args.programs)
        _run(fns, x, args.thread)
        out["maps_per_loaded_program"] = round((map_count() - m0) / args.programs, 2)
        del fns
        jax.clear_caches()
        gc.collect()
        out["maps_left_after_clearing_loaded"] = map_count() - m0
    return out


def _fill(headroom: int) -> int:
    """Takes mappings until ``headroom`` are left (tests/test_soak.py's ``take_memory_maps``)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from test_soak import take_memory_maps

    take_memory_maps(headroom)
    with open("/proc/sys/vm/max_map_count") as f:
        return int(f.read())


def exhaust_child(args) -> None:
    import jax
    import jax.numpy as jnp

    faulthandler.enable(all_threads=True)
    _setup(args)
    x = jnp.ones((64,), jnp.float32)
    _run(_programs(1, 10 ** 6), x, False)  # the backend starts before the table fills
    fns = _programs(args.programs)
    if args.cache:  # written by this process, then loaded back: the demo test's second run
        _run(fns, x, args.thread)
        jax.clear_caches()
        fns = _programs(args.programs)
    limit = _fill(args.headroom)
    print(json.dumps({"limit": limit, "maps_after_fill": map_count()}), flush=True)
    done = [0]

    def work():
        for f in fns:
            f(x).block_until_ready()
            done[0] += 1

    if args.thread:
        t = threading.Thread(target=work)
        t.start()
        t.join()
    else:
        work()
    print(json.dumps({"programs_run": done[0], "maps_at_end": map_count()}), flush=True)


def soak_child(args) -> int:
    """The soak test under pytest in this process, after the mapping table is filled."""
    import pytest

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ["VASA3D_SOAK_HEADROOM"] = str(args.headroom)  # the test takes the mappings itself

    class Toggles:
        @pytest.hookimpl(tryfirst=True)
        def pytest_sessionstart(self, session):
            import jax

            _setup(argparse.Namespace(**{**vars(args), "cache": False}))
            if not args.cache:  # tests/conftest.py turned it on
                jax.config.update("jax_enable_compilation_cache", False)
            if not args.thread:  # frames rendered in the consumer's thread instead of a worker
                from vasa3d_jax import video
                video.in_background = lambda items, depth=16: iter(items)

    code = pytest.main(["-q", "-x", "-m", "slow", "-p", "no:cacheprovider", "-s",
                        os.path.join(root, "tests", "test_soak.py")], plugins=[Toggles()])
    from vasa3d_jax import runtime

    clears = runtime._guard.clears if args.guard else 0
    print(json.dumps({"pytest_exit": int(code), "guard_clears": clears, "maps_at_end": map_count()}), flush=True)
    return int(code)


def exhaust(args) -> dict:
    argv = [sys.executable, __file__, args.mode, "--child", "--headroom", str(args.headroom),
            "--programs", str(args.programs)]
    if args.mode == "soak":
        argv += [f"--no_{k}" for k in ("cache", "thread") if not getattr(args, k)]
    else:
        argv += [f"--{k}" for k in ("cache", "thread") if getattr(args, k)]
    argv += ["--keep_freed_memory"] if args.keep_freed_memory else []
    argv += [] if args.guard else ["--no_guard"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout)
    lines = [json.loads(s) for s in proc.stdout.splitlines() if s.startswith("{")]
    tail = [s for s in proc.stderr.splitlines() if s.strip()]
    if args.stderr:
        with open(args.stderr, "w") as f:
            f.write(proc.stderr)
    fatal = next((s for s in tail if s.startswith("Fatal Python error")), None)
    crash = next((i for i, s in enumerate(tail) if s.startswith("Current thread")), None)
    return {"returncode": proc.returncode, "signal": -proc.returncode if proc.returncode < 0 else None,
            **{k: v for line in lines for k, v in line.items()},
            "llvm_error": next((s for s in tail if "LLVM" in s or "Cannot allocate" in s), None),
            "fatal": fatal, "crashed_thread": None if crash is None else [s.strip() for s in tail[crash:crash + 8]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("maps", "exhaust", "soak"))
    parser.add_argument("--cache", action="store_true", help="persistent compilation cache on, a fresh directory "
                        "(maps, exhaust)")
    parser.add_argument("--no_cache", dest="cache_off", action="store_true",
                        help="persistent compilation cache off (soak; on by default as in the test suite)")
    parser.add_argument("--keep_freed_memory", action="store_true", help="runtime.keep_freed_memory() first")
    parser.add_argument("--thread", action="store_true", help="compile and run in a worker thread (maps, exhaust)")
    parser.add_argument("--no_thread", dest="thread_off", action="store_true",
                        help="render in the consumer's thread (soak; a worker thread by default, as the library)")
    parser.add_argument("--no_guard", dest="guard", action="store_false",
                        help="remove runtime.bound_memory_maps (importing vasa3d_jax installs it)")
    parser.add_argument("--programs", type=int, default=200)
    parser.add_argument("--headroom", type=int, default=None,
                        help="mappings left free (exhaust: default 600; soak: 10000)")
    parser.add_argument("--timeout", type=int, default=1500)
    parser.add_argument("--stderr", default=None, help="write the child's whole stderr here (exhaust, soak)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "soak":
        args.cache, args.thread = not args.cache_off, not args.thread_off
    if args.headroom is None:
        args.headroom = 10000 if args.mode == "soak" else 600
    config = {k: getattr(args, k) for k in ("mode", "cache", "keep_freed_memory", "thread", "guard", "headroom")}
    if args.child:
        if args.mode == "soak":
            sys.exit(soak_child(args))
        return exhaust_child(args)
    result = maps(args) if args.mode == "maps" else exhaust(args)
    print(json.dumps({**config, **result}))


if __name__ == "__main__":
    main()
