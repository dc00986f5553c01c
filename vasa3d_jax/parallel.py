"""Data parallelism: a one-axis device mesh and the helpers that place data on it.

Trainers run their step under ``jax.shard_map`` over the mesh axis ``"data"`` (DESIGN.md, "Devices
and scale"): parameters and optimiser state are replicated (``P()``), the batch is split along its
leading axis (``P("data")``), and the step reduces gradients with ``jax.lax.pmean(g, "data")``.
Because the reduction names its axis, the same step body also runs under ``jax.pmap``.

Across processes (hosts), every process runs the same program (JAX's multi-controller model):
``initialize_distributed`` joins them first (``jax.distributed.initialize``), ``data_mesh()`` then
spans every process's devices (``jax.devices()``), replicated values are the same on every process,
and each process feeds only the rows of a batch that its own devices hold (``local_rows``,
``shard_batch``); a gradient ``pmean`` then reduces across processes (gloo on CPU). Files are
written by process 0 (``is_primary``), checkpoints by all of them together (``ckpt.py``).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
# The environment variables ``initialize_distributed`` reads when its arguments are not given
# (JAX itself reads the first; the other two are ours, named the same way).
COORDINATOR_ENV, NUM_PROCESSES_ENV, PROCESS_ID_ENV = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> bool:
    """Joins a multi-process run (``jax.distributed.initialize``) before JAX is used; returns whether
    this is one (False: nothing asked for several processes, nothing done).

    coordinator: ``host:port`` of process 0 (it listens there); num_processes: how many processes;
    process_id: this one's index in [0, num_processes). Each defaults to its environment variable
    (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``); with a coordinator
    but no count or id, JAX's cluster detection (SLURM, Open MPI, ...) fills them in.
    """
    coordinator = coordinator or os.environ.get(COORDINATOR_ENV) or None
    num_processes = _env_int(NUM_PROCESSES_ENV) if num_processes is None else num_processes
    process_id = _env_int(PROCESS_ID_ENV) if process_id is None else process_id
    if coordinator is None and num_processes is None and process_id is None:
        return False
    if jax.distributed.is_initialized():
        return True
    if coordinator is None:
        raise ValueError("a process count or id needs the coordinator's address too: give --coordinator "
                         f"HOST:PORT (process 0's host and a free port) or set {COORDINATOR_ENV}")
    if num_processes is not None and process_id is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process id {process_id} is not in [0, {num_processes}): number the processes "
                         f"0 .. {num_processes - 1}")
    jax.distributed.initialize(coordinator, num_processes, process_id)
    return True


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} must be an integer") from None


def is_primary() -> bool:
    """Whether this is process 0, the one that writes logs, previews and other files."""
    return jax.process_index() == 0


def any_process(flag: bool) -> bool:
    """Whether ``flag`` is true on any process (itself in a one-process run): decisions that end a
    loop must be the same everywhere, or the others wait for ever in the next collective."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.int32(flag))))


def data_mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all devices)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh needs at least one device")
    return jax.make_mesh((len(devices),), (DATA_AXIS,),
                         axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def devices_for_batch(batch_size: int, devices: Sequence[jax.Device] | None = None) -> list[jax.Device]:
    """The first d of ``devices`` (default: all), d the largest count that divides ``batch_size``:
    a batch of 1 fits on one device of eight, a batch of 4 on four. Across processes, the same
    number of devices from each process (every process must take part in the fit)."""
    devices = list(jax.devices() if devices is None else devices)
    procs = sorted({dev.process_index for dev in devices})
    per = min(sum(dev.process_index == p for dev in devices) for p in procs)
    fits = [k for k in range(1, per + 1) if batch_size % (k * len(procs)) == 0]
    if not fits:
        raise ValueError(f"a batch of {batch_size} cannot be split over {len(procs)} processes; run one "
                         f"process or choose a batch size that is a multiple of {len(procs)}")
    return [dev for p in procs for dev in [d for d in devices if d.process_index == p][:max(fits)]]


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
    """Copies every leaf of ``tree`` to all devices of ``mesh``. Across processes every process
    must pass the same values (each fills its own devices)."""
    if jax.process_count() == 1:
        return jax.device_put(tree, replicated(mesh))
    sharding = replicated(mesh)
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), tree)


def local_rows(batch_size: int, mesh: jax.sharding.Mesh) -> slice:
    """The rows of a global batch of ``batch_size`` that this process's devices hold when it is
    split over the ``"data"`` axis (all rows in a one-process run): the rows it has to load."""
    if batch_size % mesh.shape[DATA_AXIS]:
        raise ValueError(f"batch size {batch_size} must be a multiple of the {mesh.shape[DATA_AXIS]} "
                         f"devices; choose a batch size divisible by {mesh.shape[DATA_AXIS]}")
    index = batch_sharded(mesh).addressable_devices_indices_map((batch_size,)).values()
    starts = sorted(i[0].indices(batch_size)[0] for i in index)
    stops = sorted(i[0].indices(batch_size)[1] for i in index)
    if stops[-1] - starts[0] != sum(b - a for a, b in zip(starts, stops)):
        raise ValueError("this process's devices are not contiguous on the mesh; build it with data_mesh()")
    return slice(starts[0], stops[-1])


def shard_batch(tree: Any, mesh: jax.sharding.Mesh, batch_size: int | None = None) -> Any:
    """Splits every leaf of ``tree`` along its leading (batch) axis over the ``"data"`` axis.

    ``tree`` holds the whole batch, or (given ``batch_size``, the global one) only this process's
    rows, ``local_rows(batch_size, mesh)``: each process then loads only its own part."""
    n = mesh.shape[DATA_AXIS]
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if leaf.ndim == 0 or (batch_size or leaf.shape[0]) % n:
            raise ValueError(
                f"batch leaf {jax.tree_util.keystr(path)} has shape {leaf.shape}; its leading axis "
                f"must be a multiple of the {n} devices; choose a batch size divisible by {n}")
    sharding = batch_sharded(mesh)
    if batch_size is None:
        if jax.process_count() > 1:
            rows = local_rows(len(jax.tree.leaves(tree)[0]), mesh)
            tree = jax.tree.map(lambda a: np.asarray(a)[rows], tree)
            return jax.make_array_from_process_local_data(sharding, tree)
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda a: jax.make_array_from_process_local_data(
        sharding, np.asarray(a), (batch_size,) + np.shape(a)[1:]), tree)


def data_parallel(fn: Callable, mesh: jax.sharding.Mesh, in_specs: Any, out_specs: Any, *,
                  check_vma: bool = True) -> Callable:
    """``jax.shard_map(fn)`` over ``mesh``; specs use ``P()`` (replicated) and ``P("data")``.

    check_vma=False turns off shard_map's varying-axis check, for bodies (e.g. the renderer's
    ``lax.scan`` from constant carries) it rejects although their outputs are replicated by explicit
    ``pmean``/``psum`` reductions."""
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=check_vma)
