"""A synthetic FLAME-format file (random bases with FLAME's array shapes and kinematic tree, fewer
vertices for speed), shared by the FLAME loader tests and the avatar-file tests."""

import numpy as np

NUM_V, NUM_F = 64, 100  # FLAME: 5023 vertices, 9976 triangles; same layout, smaller
NUM_DIRS = 400  # FLAME 2020/2023: 300 shape + 100 expression


def flame_arrays(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    weights = rng.random((NUM_V, 5)) ** 4
    weights /= weights.sum(1, keepdims=True)
    j_reg = rng.random((5, NUM_V)) * (rng.random((5, NUM_V)) < 0.2)
    j_reg /= j_reg.sum(1, keepdims=True)
    return {
        "v_template": rng.normal(0, 0.1, (NUM_V, 3)),
        "shapedirs": rng.normal(0, 1e-3, (NUM_V, 3, NUM_DIRS)),
        "posedirs": rng.normal(0, 1e-2, (NUM_V, 3, 36)),
        "J_regressor": j_reg,
        "weights": weights,
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        "f": rng.integers(0, NUM_V, (NUM_F, 3)).astype(np.uint32),
    }
