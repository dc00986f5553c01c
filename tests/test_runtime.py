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


def test_map_guard_drops_compiled_programs_near_the_limit(monkeypatch):
    """``bound_memory_maps`` (installed by importing vasa3d_jax): before a compilation, a process
    over its threshold of memory mappings drops JAX's cached executables (their code is unmapped)."""
    import jax

    assert runtime.bound_memory_maps() and runtime._guard is not None
    f = jax.jit(lambda x: x + 1.0)
    f(1.0)
    assert f._cache_size() == 1
    monkeypatch.setattr(runtime._guard, "threshold", 0)  # as if the table were nearly full
    monkeypatch.setattr(runtime._guard, "floor", 0)
    monkeypatch.setattr(runtime._guard, "step", 0)
    clears = runtime._guard.clears
    jax.jit(lambda x: x * 3.0)(1.0)  # a new program: the guard runs before it compiles
    assert runtime._guard.clears == clears + 1 and f._cache_size() == 0
    # Still over the threshold, but few new mappings since: the next compilations clear nothing.
    monkeypatch.setattr(runtime._guard, "step", 10 ** 6)
    assert float(f(1.0)) == 2.0  # f compiles again when used again
    jax.jit(lambda x: x * 5.0)(1.0)
    assert runtime._guard.clears == clears + 1 and f._cache_size() == 1


def test_map_guard_fraction_is_checked():
    with pytest.raises(ValueError, match="fraction"):
        runtime.bound_memory_maps(1.5)
