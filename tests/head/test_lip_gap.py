"""The inner-lip gap read off MediaPipe landmarks (head/landmarks.py eq. 1)."""

import numpy as np
import pytest

from vasa3d_jax.head import landmarks as lm


def face(gap_px: float, eyes_px: float = 100.0, angle: float = 0.0) -> np.ndarray:
    """468 landmarks (x, y, z): eye corners ``eyes_px`` apart, lips ``gap_px`` apart, rotated in-plane."""
    p = np.zeros((468, 3))
    p[lm.OUTER_CANTHI[0], :2] = (-eyes_px / 2, 0.0)
    p[lm.OUTER_CANTHI[1], :2] = (eyes_px / 2, 0.0)
    p[lm.MOUTH_OPENING[0], :2] = (0.0, 60.0)
    p[lm.MOUTH_OPENING[1], :2] = (0.0, 60.0 + gap_px)
    p[:, 2] = np.random.default_rng(0).normal(size=468)  # depth must not count
    c, s = np.cos(angle), np.sin(angle)
    p[:, :2] = p[:, :2] @ np.array([[c, -s], [s, c]]).T + (128.0, 90.0)
    return p


def test_gap_is_the_lip_distance_over_the_eye_corner_distance():
    # Hand-computed: 3 px over 100 px; the ratio ignores image size, in-plane rotation and position.
    np.testing.assert_allclose(lm.inner_lip_gap(face(3.0)), 0.03, rtol=1e-12)
    np.testing.assert_allclose(lm.inner_lip_gap(face(6.0, eyes_px=200.0, angle=0.4)), 0.03, rtol=1e-12)
    batch = np.stack([face(0.0), face(25.0)])
    np.testing.assert_allclose(lm.inner_lip_gap(batch), [0.0, 0.25], atol=1e-12)


def test_no_face_is_nan_and_bad_shapes_are_refused():
    assert np.isnan(lm.inner_lip_gap(np.zeros((468, 3))))  # FaceAnalysis.valid False: zeros
    with pytest.raises(ValueError, match="468"):
        lm.inner_lip_gap(np.zeros((68, 2)))


def test_encoder_reads_the_same_tables():
    from vasa3d_jax.face import encode

    assert encode.OUTER_CANTHI is lm.OUTER_CANTHI and encode.FACE_OVAL is lm.FACE_OVAL  # one table, not a copy
