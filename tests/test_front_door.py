"""The front door (issue 22): every photo a person would pick, through ``vasa3d fit``, ends with a
one-line error or a started fit, never a traceback; Ctrl-C anywhere is one line and exit status 130.

A "started fit" here is a fit that reached its synthesis stage (``portrait.api.synthesise`` is
replaced by a Ctrl-C, which also exercises the interruption path): the photo was read, a face found,
framed, analysed, checked and the portrait model built.
"""

from __future__ import annotations

import io
import pathlib
import re
import sys

import numpy as np
import pytest
from PIL import Image

from vasa3d_jax import cli
from vasa3d_jax.portrait import api, checks

sys.path.insert(0, str(pathlib.Path(__file__).parent / "face"))
from face_images import astronaut, pyfeat_file  # noqa: E402


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VASA3D_CACHE", str(tmp_path / "cache"))


def _canvas(w: int, h: int, face_px: int, at=(0.5, 0.25), grey=200) -> np.ndarray:
    """The astronaut pasted into a w x h canvas, scaled so that her face box is ~face_px wide (95 px
    of her 512)."""
    n = int(round(512 * face_px / 95))
    img = np.asarray(Image.fromarray(astronaut()).resize((n, n), Image.Resampling.LANCZOS))
    out = np.full((h, w, 3), grey, np.uint8)
    x0, y0 = int(at[0] * w - n / 2), int(at[1] * h)
    xs, ys = slice(max(0, x0), min(w, x0 + n)), slice(max(0, y0), min(h, y0 + n))
    out[ys, xs] = img[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    return out


def _png(tmp_path, name, array) -> pathlib.Path:
    path = tmp_path / name
    Image.fromarray(array).save(path)
    return path


def _bytes(tmp_path, name, data: bytes) -> pathlib.Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _truncated(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(astronaut()).save(buf, "JPEG")
    return _bytes(tmp_path, "cut.jpg", buf.getvalue()[: len(buf.getvalue()) // 2])


def _cmyk(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(astronaut()).convert("CMYK").save(path, quality=95)
    return path


ERRORS = {  # photo -> what the one line must say
    "missing": (lambda t: t / "nope.jpg", "no such file"),
    "text": (lambda t: _bytes(t, "notes.jpg", b"this is not a photo\n"), "not an image"),
    "empty": (lambda t: _bytes(t, "empty.png", b""), "empty"),
    "truncated": (_truncated, "truncated"),
    "one pixel": (lambda t: _png(t, "dot.png", np.zeros((1, 1, 3), np.uint8)), "1x1 pixels"),
    "noise": (lambda t: _png(t, "noise.png", np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8)),
              "no face found"),
    "flat": (lambda t: _png(t, "flat.png", np.full((300, 400, 3), 128, np.uint8)), "no face found"),
    "face under 40 px": (lambda t: _png(t, "small.png", np.asarray(
        Image.fromarray(astronaut()).resize((128, 128), Image.Resampling.LANCZOS))), r"only \d+x\d+ px"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_bad_photo_is_one_line(case, tmp_path, capsys):
    make, says = ERRORS[case]
    path = make(tmp_path)
    assert cli.main(["fit", "--portrait", str(path), "--out", str(tmp_path / "out"), "--preset", "tiny"]) == 2
    err = _said(capsys)
    assert len(err) == 1 and err[0].startswith("vasa3d fit: error:"), err
    assert re.search(says, err[0]), err[0]


def _said(capsys) -> list[str]:
    """What the command said on stderr besides progress bars; never a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.replace("\r", "\n").splitlines() if line.startswith("vasa3d ")]


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


STARTS = {  # photo -> (--face, a warning the fit must give or None)
    "2333x1434 (odd, resampled)": (lambda t: _png(t, "wide.png", _canvas(2333, 1434, 300, (0.4, 0.1))), 0, None),
    "1434x2333 (odd, resampled)": (lambda t: _png(t, "tall.png", _canvas(1434, 2333, 300, (0.5, 0.1))), 0, None),
    "standing person (full range)": (lambda t: _png(t, "standing.png", _canvas(1500, 2000, 130)), 0, None),
    "face of 80 px (soft)": (lambda t: _png(t, "soft.png", _canvas(440, 440, 80, (0.5, 0.0))), 0, "soft"),
    "CMYK JPEG (her face is 94 px: soft)": (_cmyk, 0, "soft"),
    "group photo, second face": (lambda t: pyfeat_file("multi_face.jpg"), 1, "faces found"),
}


@pytest.mark.parametrize("case", sorted(STARTS))
def test_any_photo_starts_a_fit(case, tmp_path, capsys, monkeypatch):
    make, face, warns = STARTS[case]
    monkeypatch.setattr(api, "synthesise", _interrupt)
    argv = ["fit", "--portrait", str(make(tmp_path)), "--out", str(tmp_path / "out"), "--preset", "tiny",
            "--face", str(face)]
    with pytest.warns(checks.PortraitWarning) if warns else _no_portrait_warning() as record:
        assert cli.main(argv) == 130, capsys.readouterr().err
    if warns:
        assert any(warns in str(w.message) for w in record), [str(w.message) for w in record]
    assert _said(capsys) == ["vasa3d fit: interrupted; rerun the same command to resume the fit where it stopped"]


class _no_portrait_warning:
    def __enter__(self):
        import warnings
        self._ctx = warnings.catch_warnings(record=True)
        self.record = self._ctx.__enter__()
        warnings.simplefilter("always")
        return self.record

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        soft = [str(w.message) for w in self.record if issubclass(w.category, checks.PortraitWarning)
                and "soft" in str(w.message)]
        assert not soft, soft
        return False


def test_face_n_out_of_range_is_one_line(tmp_path, capsys):
    path = _png(tmp_path, "astro.png", astronaut())
    assert cli.main(["fit", "--portrait", str(path), "--out", str(tmp_path / "o"), "--preset", "tiny",
                     "--face", "2"]) == 2
    err = _said(capsys)
    assert err == ["vasa3d fit: error: --face 2: the photo has 1 face(s), numbered 0 (the largest) to 0 by size; "
                   "pick one of those"]


def test_standing_person_is_framed_around_the_face():
    """The full-range detector finds a face the short-range one cannot see (1/15 of the height);
    the frame around it is a portrait again, with the face at its centre, a quarter of its side."""
    from vasa3d_jax.face import pipeline

    img = _canvas(1500, 2000, 130).astype(np.float32) / 255.0
    short, *_ = pipeline._analyse(img, "standing", "litert", 4)
    assert not short["valid"].any()
    framed, faces, chosen = api.frame(img)
    assert framed.shape[0] == framed.shape[1] and 400 < framed.shape[0] < 700, framed.shape  # ~4 x 130 px
    b = np.asarray(chosen.box)
    assert np.abs((b[:2] + b[2:]) / 2 - np.array(framed.shape[:2][::-1]) / 2).max() < 0.05 * framed.shape[0]
    assert abs((b[2] - b[0]) / framed.shape[1] - 0.25) < 0.05


@pytest.mark.parametrize("command, target", [
    ("fit", "vasa3d_jax.portrait.api.fit_to_folder"),
    ("speak", "vasa3d_jax.cli._speech"),
    ("drive", "vasa3d_jax.drive.drive"),
    ("encode", "vasa3d_jax.face.clip.encode_video"),
])
def test_ctrl_c_is_one_line_and_exit_130(command, target, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(target, _interrupt)
    photo = _png(tmp_path, "p.png", astronaut())
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"")
    argv = {"fit": ["fit", "--portrait", str(photo), "--out", str(tmp_path / "o")],
            "speak": ["speak", "--audio", str(wav), "--out", str(tmp_path / "o")],
            "drive": ["drive", "--video", str(wav), "--out", str(tmp_path / "o")],
            "encode": ["encode", "--video", str(wav), "--out", str(tmp_path / "c.npz")]}[command]
    assert cli.main(argv) == 130
    err = _said(capsys)
    assert len(err) == 1 and err[0].startswith(f"vasa3d {command}: interrupted"), err
    if command in ("fit", "speak"):  # speak without --avatar fits (or reuses) the astronaut
        assert "rerun the same command to resume" in err[0]


def test_speak_needs_speech_and_one_avatar_source(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert cli.main(["speak", "--out", out]) == 2
    assert "--audio FILE" in capsys.readouterr().err
    photo = _png(tmp_path, "p.png", astronaut())
    assert cli.main(["speak", "--text", "hi", "--out", out, "--portrait", str(photo), "--avatar", str(photo)]) == 2
    assert "not both" in capsys.readouterr().err
    assert cli.main(["speak", "--text", "hi", "--audio", str(photo), "--out", out]) == 2
    assert "not both" in capsys.readouterr().err


def test_cache_is_keyed_by_content_and_preset(tmp_path, monkeypatch):
    monkeypatch.setenv("VASA3D_CACHE", str(tmp_path / "c"))
    a = _png(tmp_path, "a.png", astronaut())
    b = _png(tmp_path, "renamed.png", astronaut())
    assert api.cache_workdir(a, "quick") == api.cache_workdir(b, "quick")  # the pixels, not the name
    assert api.cache_workdir(a, "quick").parent == tmp_path / "c" / "avatars"
    assert api.cache_workdir(a, "tiny") != api.cache_workdir(a, "quick")
    assert api.cache_workdir(a, "quick", face=1).name.endswith("-quick-face1")
    monkeypatch.delenv("VASA3D_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert api.cache_root() == tmp_path / "xdg" / "vasa3d"


@pytest.mark.slow  # one tiny-preset fit (~7 min on the 2-core machine, most of it compilation)
def test_speak_with_a_standing_person_photo_fits_once_then_reuses(tmp_path, capsys, monkeypatch):
    """`vasa3d speak --portrait PHOTO --text ...`: the standing-person photo (the face a fifteenth of
    its height) becomes an avatar in the cache and speaks; the second run reuses the avatar."""
    import json

    from test_session import SIZE, tiny_generator


    monkeypatch.setattr("vasa3d_jax.motion.load_default_model", tiny_generator)
    photo = _png(tmp_path, "standing.png", _canvas(1500, 2000, 130))
    runs = []
    for out in ("a", "b"):
        assert cli.main(["speak", "--portrait", str(photo), "--text", "Hi there.", "--out", str(tmp_path / out),
                         "--preset", "tiny", "--size", str(SIZE)]) == 0
        runs.append(json.loads(capsys.readouterr().out.splitlines()[0]))
    assert [r["reused_avatar"] for r in runs] == [False, True]
    assert runs[0]["avatar_cache"] == runs[1]["avatar_cache"]
    assert runs[0]["avatar_cache"].startswith(str(tmp_path / "cache" / "avatars"))
    assert runs[1]["frames"] > 5 and (tmp_path / "b" / "talking.mp4").stat().st_size > 0
