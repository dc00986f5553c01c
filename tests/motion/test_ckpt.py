"""vasa3d_jax/ckpt.py: save/restore any pytree, latest step, metadata, preemption guard."""

import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax import ckpt


def test_roundtrip_latest_and_metadata(tmp_path):
    tree = {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.int32(4), "opt": (jnp.ones(3), jnp.zeros(()))}
    with ckpt.Checkpointer(tmp_path / "c", max_to_keep=2) as c:
        assert c.restore_latest(tree) is None and c.metadata() is None
        c.save(1, jax.tree.map(lambda x: x * 0, tree), {"note": "first"})
        c.save(4, tree, {"note": "second", "stats": [1.0, 2.0]})
        c.wait()
        assert c.latest_step() == 4
        abstract = jax.eval_shape(lambda: tree)
        restored, step = c.restore_latest(abstract)
        assert step == 4
        # bitwise: a round trip (write -> read) is the contract
        jax.tree.map(np.testing.assert_array_equal, restored, tree)
        old, _ = c.restore(abstract, step=1)
        assert float(old["w"].sum()) == 0.0
        assert c.metadata() == {"note": "second", "stats": [1.0, 2.0]}
        with pytest.raises(FileNotFoundError, match="no checkpoint"):
            c.restore(abstract, step=7)
    # a fresh manager on the same directory finds the latest checkpoint (automatic resume)
    with ckpt.Checkpointer(tmp_path / "c") as c:
        assert c.latest_step() == 4


def test_save_interval_and_force(tmp_path):
    with ckpt.Checkpointer(tmp_path, save_interval_steps=10, async_save=False) as c:
        assert c.save(10, {"a": jnp.ones(2)})
        assert not c.save(13, {"a": jnp.ones(2)})  # off the interval: skipped
        assert c.save(13, {"a": jnp.ones(2)}, force=True)
        assert c.all_steps() == [10, 13]


def test_preemption_guard_turns_signals_into_a_flag():
    previous = signal.getsignal(signal.SIGTERM)
    with ckpt.PreemptionGuard() as guard:
        assert not guard.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.requested and guard.signal == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is previous
