"""Shared pytest set-up: four fake CPU devices, the persistent compilation cache, float32 default.

JAX compile time dominates small tests, so the cache lives in the repository (``.jax_cache``, git
ignored) and is reused across runs. The four fake CPU devices are created before JAX starts, so the
data-parallel tests can run on one machine; single-device code just uses device 0.
"""

import os
import pathlib

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 4)
_CACHE = pathlib.Path(__file__).resolve().parents[1] / ".jax_cache"
jax.config.update("jax_compilation_cache_dir", os.environ.get("VASA3D_JAX_CACHE", str(_CACHE)))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture(scope="session")
def cpu_devices():
    """Four (fake) CPU devices for data-parallel tests."""
    devices = jax.devices("cpu")
    if len(devices) < 4:
        pytest.skip("needs 4 CPU devices (set before JAX initialises)")
    return devices[:4]


def has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False
