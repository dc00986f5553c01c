"""``vasa3d demo`` at a tiny size: espeak-ng speech -> motion -> template head -> turntable MP4 + sheet."""

import subprocess

import av
import numpy as np
import pytest
from PIL import Image
from test_session import SIZE, tiny_generator

from vasa3d_jax import cli, demo
from vasa3d_jax.avatar.io import save_avatar
from vasa3d_jax.avatar.template import template_avatar
from vasa3d_jax.constants import FPS, SAMPLE_RATE


def test_demo_writes_a_talking_turntable(tmp_path, capsys, monkeypatch):
    # The shipped model is replaced by a tiny random one, the sentence shortened and the portrait fit
    # replaced by a ready avatar file (test speed; the fit itself: test_demo_fits_the_astronaut).
    monkeypatch.setattr(demo, "load_default_model", tiny_generator)
    save_avatar(template_avatar(), tmp_path / "head.npz")
    assert cli.main(["demo", "--out", str(tmp_path), "--size", str(SIZE), "--text", "Hi there.",
                     "--avatar", str(tmp_path / "head.npz")]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and '"frames"' in out
    with av.open(str(tmp_path / "talking_turntable.mp4")) as c:
        assert len(c.streams.audio) == 1
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    motion = np.load(tmp_path / "motion.npy")
    assert len(frames) == len(motion) > 5
    # The head covers a good part of each frame on white, and the camera orbits: views differ.
    sheet = np.asarray(Image.open(tmp_path / "contact_sheet.png")) / 255.0
    assert 0.1 < np.mean(np.any(sheet < 0.9, axis=-1)) < 0.9
    assert np.abs(frames[0].astype(float) - frames[len(frames) // 2]).mean() > 3


def test_missing_espeak_is_explained(monkeypatch):
    from vasa3d_jax.motion import synthetic

    # The espeak-ng worker exits with 4 when libespeak-ng is not installed.
    monkeypatch.setattr(synthetic.subprocess, "run",
                        lambda args, **kw: subprocess.CompletedProcess(args, 4, b"", b""))
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        demo.synthesize("hello")


def test_synthesized_speech_is_audio():
    wav = demo.synthesize("Hello.")
    assert wav.dtype == np.float32 and 0.3 < wav.shape[0] / SAMPLE_RATE < 3
    assert np.abs(wav).max() > 0.05


@pytest.mark.slow
def test_demo_fits_the_astronaut_and_reuses_the_avatar(tmp_path, monkeypatch):
    """The whole demo at the tests' tiny preset: the astronaut photo -> avatar -> talking turntable
    and the sheet with the photo; a second run loads the avatar from the work directory."""
    monkeypatch.setattr(demo, "load_default_model", tiny_generator)
    first = demo.run(tmp_path, size=SIZE, text="Hi there.", preset="tiny", progress=False)
    assert not first["reused_avatar"] and set(first["stage_s"]) >= {"analyse", "model", "synthesise", "fit"}
    sheet = np.asarray(Image.open(first["portrait_sheet"])) / 255.0
    assert sheet.shape[0] < sheet.shape[1] and 0.1 < np.mean(np.any(sheet < 0.9, axis=-1)) < 0.95
    second = demo.run(tmp_path, size=SIZE, text="Hi there.", preset="tiny", progress=False)
    assert second["reused_avatar"] and second["stage_s"].get("fit") is None


@pytest.mark.slow
def test_demo_with_the_shipped_model_moves_the_mouth(tmp_path):
    summary = demo.run(tmp_path, size=SIZE, avatar=template_avatar())
    motion = np.load(tmp_path / "motion.npy")
    opening = np.asarray(template_avatar().space.mouth_open(motion))
    assert summary["frames"] == len(motion) == int(np.ceil(summary["audio_s"] * FPS))
    # Speech opens and closes the mouth: a wide spread of openings over the sentence.
    assert opening.max() > 0.4 and opening.min() < 0.1, (opening.min(), opening.max())
