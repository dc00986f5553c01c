"""Input checks of the portrait pipeline (issue 15 part 4) and the training crop."""

import numpy as np
import pytest

from vasa3d_jax.camera import crop_intrinsics
from vasa3d_jax.head import landmarks, template_head
from vasa3d_jax.motion_space import MotionSpace
from vasa3d_jax.portrait import api, checks


def _landmarks(centre=(256.0, 256.0), width=160.0):
    """The template's 468 face vertices seen from the front, scaled to ``width`` pixels."""
    v = np.asarray(template_head().v_template)[:468, :2] * np.array([1.0, -1.0])
    v = (v - v.mean(0)) / np.ptp(v[:, 0]) * width
    return (v + np.asarray(centre)).astype(np.float32)


def _face_image(size=512, eyes=(0.35, 0.3, 0.3), lips=(0.7, 0.3, 0.3)):
    img = np.full((size, size, 3), 0.9, np.float32)
    lm = _landmarks((size / 2, size / 2))
    img[:] = (0.85, 0.65, 0.55)  # skin everywhere
    for idx, colour in ((landmarks.EYE_L_RING, eyes), (landmarks.EYE_R_RING, eyes)):
        c = lm[list(idx)].mean(0).astype(int)
        img[c[1] - 12:c[1] + 12, c[0] - 14:c[0] + 14] = colour
    return img, lm


def test_a_good_portrait_passes_silently():
    img, lm = _face_image()
    assert checks.check_portrait(img, checks.FaceMeasure(lm, 1)) == []


def test_small_face_is_an_error_naming_the_size_needed_and_a_soft_one_warns():
    img, _ = _face_image()
    with pytest.raises(ValueError, match=r"30 px wide.*at least 40 px"):
        checks.check_portrait(img, checks.FaceMeasure(_landmarks(width=30.0) + 200, 1))
    notes = checks.check_portrait(img, checks.FaceMeasure(_landmarks(width=80.0), 1))
    assert any("80 px wide" in n and "soft" in n for n in notes), notes
    assert not any("soft" in n for n in checks.check_portrait(img, checks.FaceMeasure(_landmarks(width=130.0), 1)))


def test_face_n_picks_by_size_and_names_the_range():
    class Face:
        def __init__(self, lm):
            self.landmarks = lm

    faces = [Face(_landmarks(width=80)), Face(_landmarks(width=160)), Face(_landmarks(width=50))]
    assert [np.ptp(checks.choose_face(faces, i).landmarks[:, 0]) for i in range(3)] == pytest.approx([160, 80, 50], rel=1e-3)
    with pytest.raises(ValueError, match=r"--face 3: the photo has 3 face\(s\), numbered 0 \(the largest\) to 2"):
        checks.choose_face(faces, 3)


def test_cut_off_face_names_the_edge_and_what_will_be_poor():
    img, _ = _face_image()
    lm = _landmarks(centre=(256.0, 40.0))
    notes = checks.check_portrait(img, checks.FaceMeasure(lm, 1))
    assert any("top edge" in n and "forehead" in n for n in notes), notes


def test_several_faces_reports_the_count_and_uses_the_largest():
    class Face:
        def __init__(self, lm):
            self.landmarks = lm

    faces = [Face(_landmarks(width=80)), Face(_landmarks(width=160)), Face(_landmarks(width=50))]
    img, _ = _face_image()
    face = checks.face_measurements(faces, img)
    assert face.count == 3 and np.ptp(face.landmarks[:, 0]) == pytest.approx(160, rel=1e-3)
    assert "3 faces found" in checks.check_portrait(img, face)[0]


def test_sunglasses_and_a_covered_face_warn():
    img, lm = _face_image(eyes=(0.05, 0.05, 0.05))
    notes = " ".join(checks.check_portrait(img, checks.FaceMeasure(lm, 1, presence=0.3)))
    assert "eyes look covered" in notes and "low confidence" in notes


def test_turned_face_warns_then_fails():
    space = MotionSpace.builtin()
    x = np.zeros(space.size, np.float32)
    x[space.index("rot_y")] = np.radians(50)
    assert "mirrored" in checks.check_pose(x)[0]
    x[space.index("rot_y")] = np.radians(80)
    with pytest.raises(ValueError, match="within 45 degrees"):
        checks.check_pose(x)
    x[space.index("rot_y")] = np.radians(20)
    assert checks.check_pose(x) == []


def test_crop_keeps_projection_consistent():
    """A point projected with K lands, after crop_intrinsics, on the crop pixel that crop_resize
    takes from the photo."""
    rng = np.random.default_rng(0)
    img = rng.random((200, 300, 3)).astype(np.float32)
    K = np.array([[400.0, 0, 150], [0, 400.0, 100], [0, 0, 1]], np.float32)
    box = (60.0, 20.0, 150.0)
    crop = api.crop_resize(img, box, 150)  # scale 1: no blur, a pure shift
    Kc = crop_intrinsics(K, box, 150)
    p = np.array([0.02, -0.01, 1.0])
    u, v, w = K @ p
    uc, vc, wc = Kc @ p
    np.testing.assert_allclose([uc / wc, vc / wc], [u / w - 60.0, v / w - 20.0], atol=1e-4)
    np.testing.assert_allclose(crop[30, 40], img[50, 100], atol=1e-5)
    matte = np.zeros((200, 300), np.float32)
    matte[50:150, 100:160] = 1
    x0, y0, side = api.crop_box(matte, 0.1)
    assert side == pytest.approx(120.0) and x0 + side / 2 == pytest.approx(130.0)


def test_frame_weights_draw_the_photo_as_often_as_asked():
    from vasa3d_jax.fit.data import batch_indices

    w = api.frame_weights(49, 12.0)
    draws = np.concatenate([batch_indices(0, s, 49, 2, w) for s in range(2000)])
    assert np.mean(draws == 0) == pytest.approx(12 / 60, abs=0.02)
