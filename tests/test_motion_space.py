import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.motion_space import ACTION_UNITS, MotionSpace


def test_builtin_layout():
    space = MotionSpace.builtin()
    assert space.dyn_size == len(ACTION_UNITS) + 2 and space.pose_size == 6
    assert space.size == space.dyn_size + 6
    assert space.names[: len(ACTION_UNITS)] == ACTION_UNITS
    assert space.index("rot_x") == space.dyn_size
    x = jnp.arange(3 * space.size, dtype=jnp.float32).reshape(3, space.size)
    z_dyn, z_pose = space.split(x)
    np.testing.assert_array_equal(space.join(z_dyn, z_pose), x)  # bitwise: split/join and the readouts are slicing
    np.testing.assert_array_equal(space.pose_translation(x), x[:, -3:])
    assert np.all(space.low < space.high)


def test_mouth_open_reads_jaw_and_lips():
    space = MotionSpace.builtin()
    x = space.neutral(2)
    x = x.at[1, space.index("AU26")].set(1.0).at[1, space.index("AU25")].set(1.0)
    np.testing.assert_allclose(space.mouth_open(x), [0.0, 1.0], atol=1e-6)
    x = x.at[0, space.index("AU12")].set(1.0)  # a smile does not open the mouth
    assert float(space.mouth_open(x)[0]) == 0.0


def test_learned_space_and_errors():
    space = MotionSpace.learned(64)
    assert space.size == 70 and hash(space) == hash(MotionSpace.learned(64))
    with pytest.raises(ValueError, match="no mouth readout"):
        space.mouth_open(space.neutral())
    with pytest.raises(ValueError, match="channels"):
        space.split(jnp.zeros((5, 28)))
    with pytest.raises(KeyError, match="AU99"):
        space.index("AU99")
    with pytest.raises(ValueError):
        MotionSpace.learned(0)
