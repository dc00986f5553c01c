"""``runtime.keep_freed_memory``: after it, a large block freed by the process stays in the heap
(glibc's mallinfo2 counts it as free heap memory) instead of going back to the system."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest

from vasa3d_jax import runtime


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def test_freed_blocks_stay_in_the_heap():
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("not glibc >= 2.33")
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    assert runtime.keep_freed_memory()
    size = 64 << 20
    block = libc.malloc(size)
    assert block
    assert libc.mallinfo2().hblkhd < size  # served from the heap, not a separate mmap
    libc.free(block)
    assert libc.mallinfo2().fordblks >= size  # kept for reuse
