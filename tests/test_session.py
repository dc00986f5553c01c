"""The speech -> motion -> Gaussian head -> video session (vasa3d_jax/session.py, ``vasa3d speak``).

A tiny randomly initialised motion generator (log-mel features, so no Whisper) drives the real
template avatar; every render uses one image size and one camera family so the frame program
compiles a handful of times per session.
"""

import math

import av
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from vasa3d_jax import camera, cli, session
from vasa3d_jax.audio import load_speech
from vasa3d_jax.avatar.io import Avatar, load_avatar, save_avatar
from vasa3d_jax.avatar.render import FrameRenderer, RenderStats, render_motion
from vasa3d_jax.avatar.template import template_avatar
from vasa3d_jax.camera import CameraPath
from vasa3d_jax.motion import MotionGenerator, SamplerConfig, parse_controls
from vasa3d_jax.motion.data import Stats
from vasa3d_jax.motion.dit import DiTConfig, init_params
from vasa3d_jax.motion_space import MotionSpace

SIZE = 64
TINY = DiTConfig(feature_size=80, window=20, context=4, num_layers=1, width=32, num_heads=2)
FAST = SamplerConfig(steps=2)
# A close-up of the lower face, so the mouth spans many pixels at SIZE.
MOUTH_VIEW = CameraPath("front", distance=0.25, pivot=(0.0, -0.04, 0.0))
GREEN, RED = (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)


def tiny_generator(seed: int = 0) -> MotionGenerator:
    space = MotionSpace.builtin()
    d = space.size
    # Small motion around the neutral face: mean 0, std 0.1 per channel (AUs ~0.1, angles ~6 degrees).
    stats = Stats(np.zeros(d, np.float32), np.full(d, 0.1, np.float32), np.zeros(80, np.float32),
                  np.ones(80, np.float32), 0.6, 0.1)
    return MotionGenerator.create(init_params(TINY, jax.random.key(seed)), stats, TINY, space, "logmel")


@pytest.fixture(scope="session")
def avatar():
    return template_avatar()


@pytest.fixture(scope="session")
def talker(avatar):
    return session.Talker(avatar, tiny_generator(), size=SIZE, sampler=FAST)


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory):
    """1.0 s of a voiced-like signal (harmonics of 120 Hz, syllable envelope) at 22.05 kHz."""
    rate = 22050
    t = np.arange(rate) / rate
    wav = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 8))
    wav = 0.3 * wav * (0.5 - 0.5 * np.cos(2 * np.pi * 4 * t)) / np.max(np.abs(wav))
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    sf.write(path, wav.astype(np.float32), rate)
    return path


def _durations(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0]
        n_video = sum(1 for _ in c.decode(video=0))
        rate = float(v.average_rate)
    with av.open(str(path)) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
        return n_video, n_video / rate, samples / a.sample_rate


def test_speak_writes_video_with_matching_sound(talker, speech_wav, tmp_path):
    speech = talker.speak(speech_wav, camera_path="orbit", key=jax.random.key(3))
    assert speech.motion.shape == (25, MotionSpace.builtin().size)  # ceil(1.0 s * 25 fps)
    summary = session.save_speech(speech, tmp_path)
    n_video, video_s, audio_s = _durations(tmp_path / "talking.mp4")
    assert n_video == 25 == summary["frames"]
    assert abs(video_s - 1.0) < 1e-6
    # AAC adds 1024 priming samples and pads the last frame: at most 2 x 1024 samples (128 ms) extra.
    assert 0 <= audio_s - video_s <= 2 * 1024 / 16000
    # bitwise: a round trip (write -> read) is the contract
    np.testing.assert_array_equal(np.load(tmp_path / "motion.npy"), speech.motion)
    assert (tmp_path / "contact_sheet.png").stat().st_size > 0
    assert summary["fps"] > 0 and summary["capacity"] > 0 and summary["resizes"] == 0
    # The same key gives the same motion.
    again = talker.speak(speech_wav, camera_path="orbit", key=jax.random.key(3))
    # bitwise: determinism (same inputs, same program) is the contract
    np.testing.assert_array_equal(again.motion, speech.motion)


def _palette(avatar):
    """The avatar with mouth interior and teeth pure green, everything else pure red."""
    head, params = avatar.model.head, avatar.params
    names = head.region_names
    region = np.asarray(head.face_region)
    inner = np.isin(region, [names.index("mouth"), names.index("teeth")])
    per_face = np.where(inner[:, None], GREEN, RED).astype(np.float32)
    g = params["gaussians"]
    colors = jnp.asarray(per_face)[params["binding"].parent]
    return Avatar(avatar.model, {**params, "gaussians": g.replace(colors=colors)})


def _mouth_pixels(image):
    return int(np.sum((image[..., 1] > 0.5) & (image[..., 0] < 0.5)))


def test_motion_drives_the_mouth(avatar):
    space = avatar.space
    levels = np.array([0.0, 0.4, 0.8, 1.0])
    x = np.zeros((len(levels), space.size), np.float32)
    x[:, space.index("AU26")] = levels
    x[:, space.index("AU25")] = levels
    opening = np.asarray(space.mouth_open(jnp.asarray(x)))
    images = list(render_motion(_palette(avatar), x, MOUTH_VIEW, SIZE))
    counts = [_mouth_pixels(im) for im in images]
    assert np.all(np.diff(opening) > 0)
    assert np.all(np.diff(counts) > 0), counts  # more open -> more interior visible
    assert counts[-1] > counts[0] + 0.01 * SIZE * SIZE, counts


def test_camera_paths():
    n, size = 6, SIZE
    orbit = CameraPath.parse("orbit")
    cams = orbit.cameras(range(n + 1), size, total=n)
    views = np.asarray(cams.viewmat)
    pivot = np.asarray(camera.PIVOT)
    centres = np.stack([-v[:3, :3].T @ v[:3, 3] for v in views])
    np.testing.assert_allclose(np.linalg.norm(centres - pivot, axis=1), camera.DISTANCE, rtol=1e-5)
    # The pivot projects to the image centre in every view.
    for v in views:
        p = v[:3, :3] @ pivot + v[:3, 3]
        uv = np.asarray(cams.K[0]) @ (p / p[2])
        np.testing.assert_allclose(uv[:2], size / 2, atol=1e-3)
    assert len({tuple(np.round(v, 5).ravel()) for v in views[:n]}) == n  # n distinct views per turn
    np.testing.assert_allclose(views[n], views[0], atol=1e-5)  # and the turn closes
    front = np.asarray(CameraPath.parse("front").cameras(range(n), size, total=n).viewmat)
    assert len({tuple(np.round(v, 5).ravel()) for v in front}) == 1
    np.testing.assert_allclose(centres[0], pivot + [0, math.sin(math.radians(10)) * 0.6,
                                                   math.cos(math.radians(10)) * 0.6], atol=1e-5)
    side = CameraPath.parse("az=90,el=0")
    assert side == CameraPath.parse((90, 0)) == CameraPath.static(90.0, 0.0)
    v = np.asarray(side.viewmat(0, None))
    np.testing.assert_allclose(-v[:3, :3].T @ v[:3, 3], pivot + [0.6, 0, 0], atol=1e-5)


def test_orbit_renders_distinct_views(avatar):
    x = np.zeros((4, avatar.space.size), np.float32)
    images = np.stack(list(render_motion(avatar, x, "orbit", SIZE)))
    diffs = [np.abs(images[i] - images[j]).mean() for i in range(4) for j in range(i + 1, 4)]
    assert min(diffs) > 0.01, diffs


def test_overflow_resizes_or_raises(avatar):
    x = np.zeros(avatar.space.size, np.float32)
    path = CameraPath.parse("front")
    ok = FrameRenderer(avatar, SIZE)
    ok.prepare(None, path, 1)
    reference = ok(x, path.viewmat(0, 1))
    strict = FrameRenderer(avatar, SIZE, on_overflow="raise")
    strict.capacity = 64
    with pytest.raises(RuntimeError, match="capacity is 64"):
        strict(x, path.viewmat(0, 1))
    grows = FrameRenderer(avatar, SIZE)
    grows.capacity = 64
    np.testing.assert_allclose(grows(x, path.viewmat(0, 1)), reference, atol=1e-6)
    assert grows.resizes == 1 and grows.capacity == ok.capacity


def test_stream_yields_frames_per_window(talker, speech_wav):
    wav = load_speech(speech_wav)
    chunks = np.array_split(wav, 7)  # irregular pieces, as from a microphone
    stats, blocks = RenderStats(), []
    frames = list(talker.stream(chunks, camera_path="front", key=jax.random.key(3), stats=stats, motion_out=blocks))
    assert [len(b) for b in blocks] == [20, 5]  # a window of W = 20 frames, then the rest
    assert len(frames) == stats.frames == 25 and frames[0].shape == (SIZE, SIZE, 3)
    assert stats.fps > 0 and stats.motion_s > 0 and stats.render_s > 0


def test_avatar_file_roundtrip(avatar, tmp_path):
    path = save_avatar(avatar, tmp_path / "me")
    loaded = load_avatar(path)
    assert loaded.model.config == avatar.model.config and loaded.space == avatar.space
    for a, b in zip(jax.tree.leaves(avatar.params), jax.tree.leaves(loaded.params)):
        # bitwise: a round trip (write -> read) is the contract
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(FileNotFoundError, match="save_avatar"):
        load_avatar(tmp_path / "nope.npz")


def test_bad_inputs_are_explained(talker, tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        talker.speak(tmp_path / "missing.wav")
    with pytest.raises(ValueError, match="'front', 'orbit' or 'az=DEG,el=DEG'"):
        CameraPath.parse("sideways")
    with pytest.raises(ValueError, match="between -90 and 90"):
        CameraPath.parse("az=0,el=95")
    with pytest.raises(ValueError, match="even number"):
        FrameRenderer(talker.avatar, 33)
    with pytest.raises(ValueError, match="expected"):
        list(render_motion(talker.avatar, np.zeros((0, 28)), "front", SIZE))
    assert cli.main(["speak", "--audio", str(tmp_path / "missing.wav"), "--out", str(tmp_path)]) == 2
    assert "missing.wav" in capsys.readouterr().err
    assert cli.main(["speak", "--audio", "x.wav", "--out", str(tmp_path), "--camera", "sideways"]) == 2
    assert "unknown camera 'sideways'" in capsys.readouterr().err


# ---- issue 16: batching, exact residual skip, odd stream chunks, streams closed early -------------
def test_batched_frames_equal_single_frames(avatar):
    path = CameraPath.parse("orbit")
    x = np.asarray(avatar.space.neutral(3)) + np.float32(0.05)
    renderer = FrameRenderer(avatar, SIZE, batch=4)
    renderer.prepare(x, path, 3)
    views = np.stack([path.viewmat(t, 3) for t in range(3)])
    batch = renderer.render_batch(x, views)  # 3 frames padded to the batch of 4: one call
    assert batch.shape == (3, SIZE, SIZE, 3)
    for t in range(3):
        np.testing.assert_allclose(batch[t], renderer(x[t], views[t]), atol=1e-4)  # vmapped sums reorder


def test_zero_residual_is_detected_and_skipped_exactly(avatar):
    from vasa3d_jax.avatar.avatar import residual_is_zero

    assert residual_is_zero(avatar.params) and not FrameRenderer(avatar, SIZE).residual
    from vasa3d_jax.avatar.render import final_gaussians

    x = jnp.asarray(np.asarray(avatar.space.neutral(2)) + np.float32(0.1))
    full = final_gaussians(avatar.model, avatar.params, x)
    skipped = final_gaussians(avatar.model, avatar.params, x, residual=False)
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(skipped)):
        # bitwise: a residual of exactly zero is skipped, not approximated
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    out = avatar.params["d_pose"]["params"]["output"]
    bumped = {**avatar.params, "d_pose": {"params": {**avatar.params["d_pose"]["params"],
                                                     "output": {**out, "bias": out["bias"].at[0].set(1e-3)}}}}
    assert not residual_is_zero(bumped) and FrameRenderer(Avatar(avatar.model, bumped), SIZE).residual


def test_stream_odd_chunks_give_the_frames_of_one_call(talker):
    t = np.arange(int(2.2 * 16000)) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 150 * t) * (0.5 - 0.5 * np.cos(2 * np.pi * 3 * t))).astype(np.float32)
    whole_motion, odd_motion = [], []
    whole = list(talker.stream([wav], "front", key=jax.random.key(1), motion_out=whole_motion))
    pieces = [wav[:1], wav[1:1], wav[1:1 + 3 * 16000], wav[1 + 3 * 16000:]]  # 1 sample, 0, "3 s" (the rest)
    odd = list(talker.stream(pieces, "front", key=jax.random.key(1), motion_out=odd_motion))
    assert len(whole) == len(odd) == 55
    # bitwise: chunking the stream is a schedule only (the same windows, the same programs)
    np.testing.assert_array_equal(np.concatenate(whole_motion), np.concatenate(odd_motion))
    np.testing.assert_array_equal(np.stack(whole), np.stack(odd))


def test_stream_closed_early_leaves_a_playable_mp4(talker, speech_wav, tmp_path):
    wav = load_speech(speech_wav)

    class Stop(Exception):
        pass

    def stop_after_ten(t, image):
        if t == 9:
            raise Stop

    with pytest.raises(Stop):
        session.record_stream(talker, np.array_split(wav, 5), tmp_path / "early.mp4", on_frame=stop_after_ten)
    n_video, video_s, audio_s = _durations(tmp_path / "early.mp4")
    assert n_video == 10 and math.isclose(video_s, 0.4, abs_tol=1e-6)
    assert abs(audio_s - 0.4) < 0.05  # the sound of the frames written (AAC pads to 1024 samples)
    summary = session.record_stream(talker, np.array_split(wav, 5), tmp_path / "all.mp4")
    assert summary["frames"] == 25 and _durations(tmp_path / "all.mp4")[0] == 25


def test_parse_controls(talker):
    c = parse_controls(talker.generator, "10,-5", 0.7, None)
    assert np.allclose(c.gaze, (math.radians(10), math.radians(-5))) and c.distance == 0.7 and c.emotion is None
    with pytest.raises(ValueError, match="YAW,PITCH"):
        parse_controls(talker.generator, "left")
