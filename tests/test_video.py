import av
import numpy as np
import pytest
from PIL import Image

from vasa3d_jax import video


def test_mp4_roundtrip_with_audio(tmp_path):
    t, h, w = 10, 32, 48
    ramp = np.linspace(0, 1, t)[:, None, None, None]
    frames = np.broadcast_to(ramp, (t, h, w, 3)).astype(np.float32)
    audio = 0.3 * np.sin(2 * np.pi * 440 * np.arange(16000 * t // 25) / 16000)
    path = video.write_mp4(tmp_path / "v.mp4", (f for f in frames), fps=25, audio=audio)
    with av.open(str(path)) as container:
        assert {s.type for s in container.streams} == {"video", "audio"}
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == t and decoded[0].shape == (h, w, 3)
    means = [d.mean() / 255 for d in decoded]
    np.testing.assert_allclose(means, ramp.ravel(), atol=0.03)  # brightness ramp survives encoding


def test_contact_sheet_and_png(tmp_path):
    frames = np.random.default_rng(0).random((5, 8, 6, 3)).astype(np.float32)
    sheet = video.contact_sheet(frames, columns=3, pad=1)
    assert sheet.shape == (2 * 9 + 1, 3 * 7 + 1, 3)
    np.testing.assert_array_equal(sheet[1:9, 8:14], frames[1])  # bitwise: the contact sheet copies pixels
    png = np.asarray(Image.open(video.save_png(tmp_path / "s.png", sheet)))
    np.testing.assert_allclose(png / 255, sheet, atol=0.5 / 255 + 1e-6)


def test_refuses_nan_frames(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        video.save_png(tmp_path / "x.png", np.full((4, 4, 3), np.nan))
