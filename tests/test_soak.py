"""A long-lived process (issue 23 §5): one process fits two portraits, saves each avatar, and then
reloads and speaks with each several times, as a service that makes avatars and talks all day.

XLA:CPU once segfaulted late in the long slow-suite process, in the demo's fit-and-reuse test
(compiling or loading the renderer after a reload; four runs, never alone). The cause: every live
compiled program holds memory mappings, and the long process reached Linux's ``vm.max_map_count``
(``vasa3d_jax.runtime``). Alone, this test peaks near 20,000 mappings; it runs with all but
``HEADROOM`` of the limit already taken, as late in a long process, so it crashes without the
library's guard (``runtime.bound_memory_maps``; ``experiments/soak_crash.py soak --no_guard``:
SIGABRT in ``backend_compile_and_load``, "Unable to allocate section memory") and must pass with it.
``faulthandler`` is on, so a native crash prints every thread's Python stack.
"""

import ctypes
import faulthandler
import os
import sys

import numpy as np
import pytest
from test_session import SIZE, tiny_generator

from vasa3d_jax import demo, runtime
from vasa3d_jax.avatar.io import load_avatar
from vasa3d_jax.portrait.api import get_preset, portrait_to_avatar

# Speaking rounds per portrait after the fit (each reloads the avatar from its file).
ROUNDS = 3
# Memory mappings left free when the test starts (the test alone needs about twice as many).
HEADROOM = int(os.environ.get("VASA3D_SOAK_HEADROOM", "10000"))


def map_count() -> int:
    with open("/proc/self/maps", "rb") as f:
        return f.read().count(b"\n")


def take_memory_maps(headroom: int):
    """Takes this process's memory mappings until ``headroom`` are left below ``vm.max_map_count``,
    as thousands of live executables do in a long process: every other page of one PROT_NONE
    reservation is made readable, so each is a mapping of its own (equal neighbours would merge).
    Returns a function that gives them all back."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    with open("/proc/sys/vm/max_map_count") as f:
        limit = int(f.read())
    pages = max(0, (limit - map_count() - headroom) // 2)
    page = os.sysconf("SC_PAGE_SIZE")
    base = libc.mmap(None, (2 * pages + 1) * page, 0, 0x22, -1, 0)  # PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS
    assert base not in (None, ctypes.c_void_p(-1).value), "mmap failed"
    length = (2 * pages + 1) * page
    for i in range(pages):
        libc.mprotect(base + (2 * i + 1) * page, page, 1)  # PROT_READ
    return lambda: libc.munmap(base, length)


def grace_hopper() -> np.ndarray:
    """Matplotlib's sample photo of Grace Hopper as (H, W, 3) float32 in [0, 1]."""
    import matplotlib.cbook
    from PIL import Image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"), np.float32) / 255.0


@pytest.fixture
def crowded_map_table():
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs Linux's /proc")
    release = take_memory_maps(HEADROOM)
    yield
    release()


@pytest.mark.slow
def test_two_portraits_fit_save_reload_and_speak_in_one_process(tmp_path, crowded_map_table):
    faulthandler.enable(file=sys.stderr, all_threads=True)
    guard = runtime._guard  # installed by importing vasa3d_jax
    clears = guard.clears if guard is not None else 0
    generator = tiny_generator()
    steps = get_preset("tiny").fit.steps
    portraits = {"astronaut": demo.astronaut(), "grace_hopper": grace_hopper()}
    files = {}
    for name, image in portraits.items():
        result = portrait_to_avatar(image, "tiny", tmp_path / name, generator=generator, progress=False)
        assert not result.reused and result.fit_steps == steps
        files[name] = tmp_path / name / "avatar.npz"
        assert files[name].is_file()
    for r in range(ROUNDS):
        for name, path in files.items():
            avatar = load_avatar(path)  # a fresh Avatar each round: its programs are looked up again
            summary = demo.run(tmp_path / f"{name}_{r}", text="Hi there.", size=SIZE, seed=r,
                               generator=generator, avatar=avatar, progress=False)
            motion = np.load(tmp_path / f"{name}_{r}" / "motion.npy")
            assert summary["frames"] == len(motion) > 5, (name, r, summary)
    # The work needs about twice the mappings left: it lived because the guard dropped programs.
    assert guard is not None and guard.clears > clears
