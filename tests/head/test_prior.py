"""head.prior: the linear map from the motion latent to head-model parameters (P_e, P_p)."""

import types

import numpy as np

from vasa3d_jax.head.prior import JAW_OPEN_PER_AU26, base_priors
from vasa3d_jax.motion_space import ACTION_UNITS, MotionSpace


def test_base_priors_for_a_head_without_named_expressions():
    """FLAME-like heads (PCA expressions): AU26 opens the jaw, gaze turns the eyes, AUs map to 0;
    a learned code gets a zero expression prior; z_pose is always the global rotation/translation."""
    flame_like = types.SimpleNamespace(num_expression=50, kind="flame")
    space = MotionSpace.builtin()
    p_exp, p_pose = base_priors(space, flame_like)
    z = np.zeros(space.dyn_size, np.float32)
    z[ACTION_UNITS.index("AU26")], z[ACTION_UNITS.index("AU12")] = 1.0, 1.0
    z[space.index("gaze_yaw")] = 0.2
    e = z @ np.asarray(p_exp)
    np.testing.assert_allclose(e[:50], 0)
    np.testing.assert_allclose(e[50:53], [JAW_OPEN_PER_AU26, 0, 0])
    np.testing.assert_allclose(e[53:59], [0, 0.2, 0, 0, 0.2, 0])
    np.testing.assert_allclose(np.arange(1, 7, dtype=np.float32) @ np.asarray(p_pose),
                               [0, 0, 0, 1, 2, 3, 4, 5, 6])
    p_learned, _ = base_priors(MotionSpace.learned(8), flame_like)
    assert p_learned.shape == (8, 59) and not np.any(np.asarray(p_learned))
