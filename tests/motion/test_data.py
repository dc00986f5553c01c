"""Clip files (vasa3d_jax/motion/data.py): format checks, split, statistics, feature precomputation."""

import numpy as np
import pytest

from vasa3d_jax.motion import data
from vasa3d_jax.motion_space import MotionSpace

SPACE = MotionSpace.builtin()


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_load_clip_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    m = rng.normal(size=(30, SPACE.size)).astype(np.float32)
    f = rng.normal(size=(30, 5)).astype(np.float32)
    p = _write(tmp_path / "a.npz", motion=m, features=f, feature_encoder=np.asarray("logmel"),
               gaze=np.array([0.1, -0.2]), distance=np.float32(0.6), emotion=np.ones(8), text=np.asarray("hi"))
    clip = data.load_clip(p, SPACE, feature_encoder="logmel")
    np.testing.assert_array_equal(clip.motion, m)  # bitwise: a round trip (write -> read) is the contract
    assert clip.gaze.shape == (2,) and clip.distance == pytest.approx(0.6) and clip.emotion.shape == (8,)
    with pytest.raises(ValueError, match="encoder"):
        data.load_clip(p, SPACE, feature_encoder="whisper")


@pytest.mark.parametrize("arrays,match", [
    (dict(features=np.zeros((3, 2))), "no 'motion'"),
    (dict(motion=np.zeros((3, 5))), "channels"),
    (dict(motion=np.full((3, 28), np.nan)), "NaN"),
    (dict(motion=np.zeros((3, 28))), "precompute_features"),
    (dict(motion=np.zeros((3, 28)), features=np.zeros((4, 2))), "T = 3"),
])
def test_bad_clips_are_explained(tmp_path, arrays, match):
    p = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        data.load_clip(p, SPACE)


def test_folder_errors_and_split(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.list_clips(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no .npz"):
        data.list_clips(tmp_path)
    paths = [tmp_path / f"c{i}.npz" for i in range(200)]
    train, held = data.split_clips(paths, 0.1)
    assert len(train) + len(held) == 200 and 8 <= len(held) <= 35
    assert data.split_clips(paths[:50], 0.1)[1] == [p for p in held if p in paths[:50]]  # stable


def test_stats_normalise(tmp_path):
    rng = np.random.default_rng(1)
    clips = [data.Clip("a", rng.normal(2, 3, size=(500, 4)).astype(np.float32),
                       rng.normal(size=(500, 3)).astype(np.float32), distance=0.5),
             data.Clip("b", np.zeros((10, 4), np.float32), np.zeros((10, 3), np.float32))]
    s = data.Stats.from_clips(clips)
    assert s.motion_mean.shape == (4,) and s.distance_mean == pytest.approx(0.5)
    again = data.Stats.from_dict(s.to_dict())
    np.testing.assert_allclose(again.motion_std, s.motion_std)


def test_precompute_features_with_a_stub_encoder(tmp_path, monkeypatch):
    import vasa3d_jax.audio as audio

    def fake_features(wav, fps=25, encoder="whisper"):
        n = int(np.ceil(len(wav) / 640)) + 1  # one frame too many, as a front-end may produce
        return np.tile(np.arange(n, dtype=np.float32)[:, None], (1, 3))

    monkeypatch.setattr(audio, "speech_features", fake_features, raising=False)
    m = np.zeros((25, SPACE.size), np.float32)
    _write(tmp_path / "x.npz", motion=m, audio=np.zeros(16000, np.float32), text=np.asarray("hello"))
    assert data.precompute_features(tmp_path, encoder="stub", progress=False) == 1
    clip = data.load_clip(tmp_path / "x.npz", SPACE, feature_encoder="stub")
    assert clip.features.shape == (25, 3)
    assert data.precompute_features(tmp_path, encoder="stub", progress=False) == 0  # already done
    with np.load(tmp_path / "x.npz") as z:
        assert str(z["text"]) == "hello"


def test_write_clip_round_trips_atomically_with_fps(tmp_path):
    """write_clip -> load_clip returns what was written, records fps and sample rate, keeps metadata,
    leaves labels it was not given out, and leaves no temporary file behind."""
    rng = np.random.default_rng(2)
    m = rng.normal(size=(12, SPACE.size)).astype(np.float32)
    wav = rng.uniform(-0.5, 0.5, 12 * 640).astype(np.float32)
    p = data.write_clip(tmp_path / "sub" / "c.npz", m, audio=wav, distance=0.7, text="hi", voice=np.str_("en"))
    assert sorted(q.name for q in p.parent.iterdir()) == ["c.npz"]
    clip = data.load_clip(p, SPACE, require_features=False, with_audio=True)
    np.testing.assert_array_equal(clip.motion, m)  # float32 in, float32 stored: bitwise is the contract
    np.testing.assert_array_equal(clip.audio, wav)
    assert clip.distance == pytest.approx(0.7) and clip.gaze is None and clip.emotion is None
    with np.load(p) as z:
        assert float(z["fps"]) == 25.0 and int(z["sample_rate"]) == 16000
        assert str(z["text"]) == "hi" and str(z["voice"]) == "en" and "gaze" not in z


def test_write_clip_and_load_clip_refuse_other_rates(tmp_path):
    m = np.zeros((3, SPACE.size), np.float32)
    with pytest.raises(ValueError, match="25"):
        data.write_clip(tmp_path / "a.npz", m, fps=30.0)
    with pytest.raises(ValueError, match="16000"):
        data.write_clip(tmp_path / "a.npz", m, sample_rate=22050)
    with pytest.raises(ValueError, match=".npz"):
        data.write_clip(tmp_path / "a.clip", m)
    p = _write(tmp_path / "b.npz", motion=m, fps=np.float32(30.0))
    with pytest.raises(ValueError, match="30.0 fps"):
        data.load_clip(p, SPACE, require_features=False)
