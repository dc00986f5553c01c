"""analyze_faces end to end: Flax equals the LiteRT pipeline on real portraits, matches the numbers
MediaPipe itself gives (mediapipe-face.md), batches equal single images.

Tolerance Flax vs LiteRT: 0.01 px on landmarks (measured ~1e-4 px on astronaut: the networks
differ by float32 rounding, the pre/post-processing is shared).
"""

import numpy as np
import pytest

from vasa3d_jax.face import FaceAnalysis, analyze_faces, load_image

from face_images import astronaut, grace_hopper, pyfeat_file

PX = 0.01  # pixels, flax vs litert


@pytest.fixture(scope="module")
def astro():
    img = astronaut()
    return img, analyze_faces(img, backend="flax"), analyze_faces(img, backend="litert")


def _agree(a: FaceAnalysis, b: FaceAnalysis, px=PX):
    assert np.abs(a.landmarks[..., :2] - b.landmarks[..., :2]).max() < px
    assert np.abs(a.landmarks[..., 2] - b.landmarks[..., 2]).max() < 1e-4  # image widths
    assert np.abs(a.iris - b.iris).max() < px
    assert np.abs(a.box - b.box).max() < px
    assert abs(float(a.score) - float(b.score)) < 1e-4


def test_astronaut_flax_equals_litert(astro):
    _, flax, lite = astro
    assert len(flax) == len(lite) == 1
    _agree(flax[0], lite[0])


def test_astronaut_matches_mediapipe(astro):
    """Values mediapipe-face.md §2.3/§3.1/§3.4 measured with mp.solutions 0.10.21 on astronaut
    (normalised x * 512; ours carry the +0.5 pixel-centre shift)."""
    f = astro[1][0]
    np.testing.assert_allclose(f.keypoints[0, 0] - 0.5, 201.5, atol=0.06)   # right-eye keypoint x
    np.testing.assert_allclose(f.keypoints[1, 0] - 0.5, 245.8, atol=0.06)
    np.testing.assert_allclose(f.keypoints[4:, 0] - 0.5, [178, 272], atol=0.6)  # ear tragions
    # ROI of §3.1: box (0.34681, 0.16186, 0.18622, 0.18622) normalised
    np.testing.assert_allclose((f.box[:2] - 0.5) / 512, [0.34681, 0.16186], atol=2e-5)
    np.testing.assert_allclose((f.box[2:] - f.box[:2]) / 512, [0.18622, 0.18622], atol=2e-5)
    np.testing.assert_allclose(f.landmarks[1, 2], -0.0455, atol=5e-4)  # nose tip z, image widths
    assert 0.9 < float(f.score) < 1 and float(f.presence) > 0.99
    # iris centres inside their eyes, between the corners (33/133 and 362/263)
    for eye, (a, b) in enumerate(((33, 133), (362, 263))):
        lo, hi = sorted((f.landmarks[a, 0], f.landmarks[b, 0]))
        assert lo < f.iris[eye, 0, 0] < hi
        assert f.iris[eye, 1, 0] > f.iris[eye, 0, 0] > f.iris[eye, 3, 0]  # image-ordered boundary
        assert f.iris[eye, 2, 1] < f.iris[eye, 0, 1] < f.iris[eye, 4, 1]


def test_grace_hopper_flax_equals_litert():
    img = grace_hopper()
    a, b = analyze_faces(img), analyze_faces(img, backend="litert")
    assert len(a) == len(b) == 1
    _agree(a[0], b[0])
    assert a[0].landmarks.shape == (468, 3) and a[0].iris.shape == (2, 5, 2)


@pytest.mark.slow
def test_single_face_flax_equals_litert():
    img = load_image(pyfeat_file("single_face.jpg"))
    a, b = analyze_faces(img), analyze_faces(img, backend="litert")
    assert len(a) == len(b) == 1
    _agree(a[0], b[0])


def test_batch_equals_single(astro):
    img = astro[0]
    frames = np.stack([img, np.roll(img, (7, -5), axis=(0, 1))])
    batch = analyze_faces(frames)
    assert batch.landmarks.shape == (2, 468, 3) and batch.iris.shape == (2, 2, 5, 2)
    assert batch.valid.all()
    for t in range(2):
        single = analyze_faces(frames[t])[0]
        _agree(batch[t], single, px=1e-3)
    # the rolled frame's landmarks moved by the roll (up to MediaPipe's crop resampling)
    shift = batch.landmarks[1, :, :2] - batch.landmarks[0, :, :2]
    np.testing.assert_allclose(np.median(shift, 0), [-5, 7], atol=0.3)


def test_batch_marks_frames_without_face(astro):
    img = astro[0]
    frames = np.stack([img, np.full_like(img, 128)])
    batch = analyze_faces(frames)
    assert batch.valid.tolist() == [True, False]
    assert np.all(batch.landmarks[1] == 0)


@pytest.mark.slow
def test_whole_pipeline_is_one_pure_jittable_function(astro):
    """face_pipeline with the Flax nets under a single jax.jit equals the staged run."""
    import jax
    import jax.numpy as jnp
    from vasa3d_jax.face.pipeline import _runners, face_pipeline, flax_nets

    img = astro[0]
    frames = jnp.asarray(np.stack([img, np.roll(img, (3, 4), axis=(0, 1))]), jnp.float32) / 255
    fused = jax.jit(lambda x: face_pipeline(x, *flax_nets(), max_faces=4, num_meshes=1, jit_stages=False))
    a = fused(frames)
    b = face_pipeline(frames, *_runners("flax"), max_faces=4, num_meshes=1)
    for k in ("landmarks", "iris", "box"):
        np.testing.assert_allclose(np.asarray(a[k]), np.asarray(b[k]), atol=1e-3)


def test_full_range_detection_flax_equals_litert():
    """A face too small for the short-range detector (the astronaut's face, 130 px in a 1500 x 2000
    photo): the full-range detector finds it with both backends, to the networks' rounding."""
    from PIL import Image

    from vasa3d_jax.face import pipeline

    n = int(round(512 * 130 / 95))
    img = np.full((2000, 1500, 3), 200, np.uint8)
    img[400:400 + n, 750 - n // 2:750 - n // 2 + n] = Image.fromarray(astronaut()).resize((n, n), Image.Resampling.LANCZOS)
    flax, *_ = pipeline._analyse(img, "standing", "flax", 4, detector="full")
    lite, *_ = pipeline._analyse(img, "standing", "litert", 4, detector="full")
    assert flax["valid"][0, 0] and lite["valid"][0, 0] and not flax["valid"][0, 1:].any()
    assert np.abs(flax["box"][0, 0] - lite["box"][0, 0]).max() < PX
    assert abs(float(flax["score"][0, 0]) - float(lite["score"][0, 0])) < 1e-4
    face = analyze_faces(img)[0]  # then analysed again around the face at full resolution
    assert np.abs(face.box - flax["box"][0, 0]).max() < 0.15 * n * 95 / 512
