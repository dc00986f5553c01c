"""Process settings that make XLA:CPU runs faster; opt-in, since they change the whole process.

XLA:CPU allocates each execution's temporary buffers afresh. glibc serves large requests with
``mmap`` and returns freed memory to the system, so every run of a compiled render touches new
pages and pays a page fault per 4 KiB (the 100k_512 forward has ~60 MB of temporaries: about a
sixth of its time on this VM, measured with ``experiments/bench_render.py``). Raising glibc's mmap
and trim thresholds keeps freed memory in the heap for the next run; the cost is that the
process's resident memory stays at its peak. The same can be had without code by setting
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` in the environment, or by preloading
tcmalloc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

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
