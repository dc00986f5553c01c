"""Process settings for XLA:CPU: faster runs (``keep_freed_memory``) and long lives (``bound_memory_maps``);
opt-in, since they change the whole process.

XLA:CPU allocates each execution's temporary buffers afresh. glibc serves large requests with
``mmap`` and returns freed memory to the system, so every run of a compiled render touches new
pages and pays a page fault per 4 KiB (the 100k_512 forward has ~60 MB of temporaries: about a
sixth of its time on this VM, measured with ``experiments/bench_render.py``). Raising glibc's mmap
and trim thresholds keeps freed memory in the heap for the next run; the cost is that the
process's resident memory stays at its peak. The same can be had without code by setting
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` in the environment, or by preloading
tcmalloc.

A long-lived process meets a limit of another kind. XLA:CPU JIT-links every compiled program into
memory mappings of its own (code, read-only data, data: about 3 for a small program, more for a
large one; ``experiments/soak_crash.py maps``), held as long as JAX's in-memory caches hold the
executable. Linux refuses a process more than ``vm.max_map_count`` mappings (65530 by default); at
the limit LLVM's JIT linker gets ENOMEM from ``mmap`` ("LLVM compilation error: Cannot allocate
memory") and XLA:CPU then dies with SIGSEGV, compiling or loading a program from the persistent
cache, in whichever thread compiles (``experiments/soak_crash.py exhaust``). That was the crash late
in the long slow-test process (issue 23). ``bound_memory_maps`` keeps a process below the limit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading

_log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc malloc.h
_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Tell glibc malloc to reuse freed memory instead of unmapping it (see the module docstring).

    Returns True when applied, False where the C library is not glibc (nothing changes there).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))


# JAX records this scalar as each backend compilation (or persistent-cache load) starts
# (jax/_src/dispatch.py, BACKEND_COMPILE_EVENT; jax 0.10.2).
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_MAPS_LIMIT = "/proc/sys/vm/max_map_count"
_guard_lock = threading.Lock()
_guard: "_MapGuard | None" = None


def memory_maps() -> int | None:
    """The number of memory mappings of this process (lines of ``/proc/self/maps``); None off Linux."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return None


class _MapGuard:
    """The listener of ``bound_memory_maps``. After a clear, mappings that are still held (live
    arrays' executables, other libraries) set a floor; the next clear waits until new programs have
    taken another ``step`` of them (or half of those left below the limit, if fewer), so a process
    that lives near its threshold does not clear (and recompile) before every compilation."""

    def __init__(self, limit: int, fraction: float):
        self.limit, self.threshold = limit, int(fraction * limit)
        self.step = max(1, (limit - self.threshold) // 5)
        self.floor = 0  # mappings left after the last clear
        self.clears = 0

    def __call__(self, event: str, value, **kwargs) -> None:
        if event != _COMPILE_EVENT:
            return
        count = memory_maps()
        if count is None or count < max(self.threshold, self.floor + min(self.step, (self.limit - self.floor) // 2)):
            return
        import jax

        jax.clear_caches()  # every executable no one else holds is freed, and its code unmapped
        gc.collect()
        self.floor = memory_maps() or 0
        self.clears += 1
        _log.warning("%d of %d memory mappings in use before compiling %s: JAX's in-memory caches of "
                     "compiled programs cleared (%d now; they compile again or load from the persistent cache)",
                     count, self.limit, kwargs.get("fun_name", "a program"), self.floor)


def bound_memory_maps(fraction: float = 0.75) -> bool:
    """Keeps this process below Linux's ``vm.max_map_count`` (module docstring): before each XLA
    compilation or persistent-cache load, when the process holds more than ``fraction`` of the
    limit, JAX's in-memory caches of compiled programs are cleared (``jax.clear_caches()``); programs
    used again compile again, or load from the persistent compilation cache. Over the threshold, a
    clear comes again only after new programs have taken a fifth of the mappings above it (of
    65530 at 0.75: 3276), or half of those still free, whichever is fewer.

    Installs once per process (later calls change nothing) and returns True; False where
    ``/proc`` is not available (not Linux: nothing is installed).
    """
    global _guard
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction={fraction} must be in (0, 1): the share of vm.max_map_count to stay under")
    try:
        with open(_MAPS_LIMIT) as f:
            limit = int(f.read())
    except (OSError, ValueError):
        return False
    if memory_maps() is None:
        return False
    with _guard_lock:
        if _guard is None:
            import jax

            _guard = _MapGuard(limit, fraction)
            jax.monitoring.register_scalar_listener(_guard)
    return True
