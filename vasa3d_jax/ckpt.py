"""Checkpoints: one small wrapper over Orbax's V0 ``CheckpointManager``.

Every trainer in the project (motion diffusion, per-identity fitting) saves and restores through this
file, so moving to Orbax V1 later touches only here (style-anchors.md §3.3, §4.9). A checkpoint holds
one pytree of arrays (the train state: params, optimiser state, step, ...) and, optionally, a small
JSON dict (config, data statistics) under two Orbax items, ``state`` and ``meta``.

Across processes (``parallel.initialize_distributed``) every process makes the same calls on one
shared directory: Orbax's manager synchronises them, each process writes the shards it owns (a
replicated array once, by its first replica) and process 0 the metadata and the commit marker
(checked with 2 processes x 2 CPU devices, tests/fit/test_distributed.py).

Usage, the pattern every trainer follows::

    with Checkpointer(workdir / "ckpt", max_to_keep=2) as ckpt, PreemptionGuard() as guard:
        state, start = ckpt.restore_latest(abstract_state) or (init_state, 0)   # automatic resume
        for step in range(start, steps):
            state = train_step(state, ...)
            if guard.requested:                      # SIGINT / SIGTERM arrived: save and stop
                ckpt.save(step + 1, state, force=True); break
            ckpt.save(step + 1, state)               # honours save_interval_steps, async
"""

from __future__ import annotations

import pathlib
import signal
import threading
from typing import Any

import jax
import orbax.checkpoint as ocp

_STATE = "state"
_META = "meta"


class Checkpointer:
    """Saves/restores ``(step, pytree[, json dict])`` in ``directory``; saves run asynchronously."""

    def __init__(self, directory: str | pathlib.Path, *, max_to_keep: int | None = 3,
                 save_interval_steps: int = 1, async_save: bool = True):
        self.directory = pathlib.Path(directory).resolve()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, save_interval_steps=save_interval_steps, create=True,
            enable_async_checkpointing=async_save)
        self._manager = ocp.CheckpointManager(self.directory, options=options,
                                              item_names=(_STATE, _META))

    def latest_step(self) -> int | None:
        """The newest finished checkpoint's step, or None when the directory has none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, metadata: dict | None = None, *, force: bool = False) -> bool:
        """Starts saving ``state`` (and ``metadata``, JSON-serialisable) as ``step``.

        Returns whether a save was started: steps off ``save_interval_steps`` are skipped unless
        ``force``. The write continues in the background; call :meth:`wait` before reading it.
        """
        items = {_STATE: ocp.args.StandardSave(state)}
        if metadata is not None:
            items[_META] = ocp.args.JsonSave(metadata)
        return self._manager.save(step, args=ocp.args.Composite(**items), force=force)

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, int]:
        """Restores the state saved at ``step`` (default: the latest) into ``abstract_state``'s
        structure, shapes, dtypes and shardings (e.g. from ``jax.eval_shape``).

        Returns ``(state, step)``. Raises FileNotFoundError when there is no such checkpoint.
        """
        step = self.latest_step() if step is None else step
        if step is None or step not in self.all_steps():
            raise FileNotFoundError(
                f"no checkpoint for step {step} in {self.directory} (steps: {self.all_steps()}); "
                "train first or point to the right work directory")
        abstract = jax.tree.map(_abstract_leaf, abstract_state)
        out = self._manager.restore(
            step, args=ocp.args.Composite(**{_STATE: ocp.args.StandardRestore(abstract)}))
        return out[_STATE], step

    def restore_latest(self, abstract_state: Any) -> tuple[Any, int] | None:
        """``restore(abstract_state)`` when a checkpoint exists, else None (start from scratch)."""
        return None if self.latest_step() is None else self.restore(abstract_state)

    def metadata(self, step: int | None = None) -> dict | None:
        """The JSON dict saved with ``step`` (default: the latest), or None when none was saved."""
        step = self.latest_step() if step is None else step
        if step is None:
            return None
        path = self.directory / str(step) / _META
        if not path.exists():
            return None
        out = self._manager.restore(step, args=ocp.args.Composite(**{_META: ocp.args.JsonRestore()}))
        return dict(out[_META])

    def wait(self) -> None:
        """Blocks until every started save has been written."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _abstract_leaf(x):
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    sharding = getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


class PreemptionGuard:
    """Turns SIGINT/SIGTERM into a flag, so a training loop can save and stop between steps.

    Saving inside a signal handler is unsafe (the handler can interrupt a step or a save half-way),
    so the handler only records the request; the loop polls :attr:`requested`. The previous handlers
    come back on exit. Outside the main thread (where Python forbids handlers) the guard is inert.
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)):
        self._signals = signals
        self._previous: dict[int, Any] = {}
        self.requested = False
        self.signal: int | None = None

    def _handle(self, signum, frame) -> None:
        self.requested = True
        self.signal = signum

    def __enter__(self) -> "PreemptionGuard":
        if threading.current_thread() is threading.main_thread():
            for s in self._signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
