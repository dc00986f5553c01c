"""Data parallelism: a one-axis device mesh and the helpers that place data on it.

Trainers run their step under ``jax.shard_map`` over the mesh axis ``"data"`` (DESIGN.md, "Devices
and scale"): parameters and optimiser state are replicated (``P()``), the batch is split along its
leading axis (``P("data")``), and the step reduces gradients with ``jax.lax.pmean(g, "data")``.
Because the reduction names its axis, the same step body also runs under ``jax.pmap``.
On one host the mesh holds the local devices; across hosts call ``jax.distributed.initialize()``
first and ``data_mesh()`` spans ``jax.devices()``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all devices)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh needs at least one device")
    return jax.make_mesh((len(devices),), (DATA_AXIS,),
                         axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def devices_for_batch(batch_size: int, devices: Sequence[jax.Device] | None = None) -> list[jax.Device]:
    """The first d of ``devices`` (default: all), d the largest count that divides ``batch_size``:
    a batch of 1 fits on one device of eight, a batch of 4 on four."""
    devices = list(jax.devices() if devices is None else devices)
    d = max(k for k in range(1, min(batch_size, len(devices)) + 1) if batch_size % k == 0)
    return devices[:d]


def example_keys(seed: int, step: int, batch_size: int) -> np.ndarray:
    """Per-example PRNG keys of step ``step`` as raw ``(batch_size, 2)`` uint32, independent of the
    device count (fitting and motion training draw their randomness per example, never per device)."""
    base = jax.random.fold_in(jax.random.key(seed), step)
    return np.asarray(jax.random.key_data(jax.random.split(base, batch_size)))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: jax.sharding.Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def replicate(tree: Any, mesh: jax.sharding.Mesh) -> Any:
    """Copies every leaf of ``tree`` to all devices of ``mesh``."""
    return jax.device_put(tree, replicated(mesh))


def shard_batch(tree: Any, mesh: jax.sharding.Mesh) -> Any:
    """Splits every leaf of ``tree`` along its leading (batch) axis over the ``"data"`` axis."""
    n = mesh.shape[DATA_AXIS]
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if leaf.ndim == 0 or leaf.shape[0] % n:
            raise ValueError(
                f"batch leaf {jax.tree_util.keystr(path)} has shape {leaf.shape}; its leading axis "
                f"must be a multiple of the {n} devices; choose a batch size divisible by {n}")
    return jax.device_put(tree, batch_sharded(mesh))


def data_parallel(fn: Callable, mesh: jax.sharding.Mesh, in_specs: Any, out_specs: Any, *,
                  check_vma: bool = True) -> Callable:
    """``jax.shard_map(fn)`` over ``mesh``; specs use ``P()`` (replicated) and ``P("data")``.

    check_vma=False turns off shard_map's varying-axis check, for bodies (e.g. the renderer's
    ``lax.scan`` from constant carries) it rejects although their outputs are replicated by explicit
    ``pmean``/``psum`` reductions."""
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=check_vma)
