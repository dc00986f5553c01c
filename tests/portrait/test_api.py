"""The portrait -> avatar orchestration (stages, cache, resume, anchor weighting, CLI outputs) on a
stand-in world: the photo is a render of the template head, so the stand-in face analysis, encoder,
matte, portrait model and synthesiser are exact, and what is tested is the pipeline around them."""

import dataclasses
import json
import sys
import types

import jax
import numpy as np
import pytest

from vasa3d_jax.avatar.io import Avatar, load_avatar
from vasa3d_jax.avatar.render import render_frames
from vasa3d_jax.avatar.template import template_avatar
from vasa3d_jax.camera import PIVOT, CameraPath, camera_intrinsics
from vasa3d_jax.avatar import GaussianAvatar
from vasa3d_jax.motion_space import MotionSpace
from vasa3d_jax.portrait import api
from vasa3d_jax.render import Camera

PHOTO = 192


@dataclasses.dataclass(frozen=True)
class MotionFit:
    latent: np.ndarray
    camera: Camera


def _truth():
    return template_avatar()


def _photo_camera():
    return Camera(viewmat=np.asarray(CameraPath().viewmat(0, 1)),
                  K=np.asarray(camera_intrinsics(PHOTO)), width=PHOTO, height=PHOTO)


def _render(latents, cams):
    return render_frames(_truth(), np.asarray(latents), cams)


def _install(monkeypatch):
    space = MotionSpace.builtin()
    cam = _photo_camera()
    latent = np.zeros(space.size, np.float32)
    batched = cam.replace(viewmat=cam.viewmat[None], K=cam.K[None])
    photo = _render(latent[None], batched)[0]
    verts = np.asarray(_truth().model.head.v_template)[:468]
    h = np.c_[verts, np.ones(len(verts))] @ np.asarray(cam.viewmat).T
    uv = h[:, :3] @ np.asarray(cam.K).T
    landmarks = uv[:, :2] / uv[:, 2:]

    face = types.ModuleType("vasa3d_jax.face")
    face.load_image = lambda p: np.asarray(p, np.float32)
    face.analyze_faces = lambda img: [types.SimpleNamespace(landmarks=landmarks, presence=0.9)]
    face.encode_motion = lambda analysis, head, sp: MotionFit(latent=latent, camera=cam)
    matte = types.ModuleType("vasa3d_jax.portrait.matte")
    matte.head_and_hair_matte = lambda img, analysis: (np.min(img, -1) < 0.99).astype(np.float32)
    model = types.ModuleType("vasa3d_jax.portrait.model")
    model.build_portrait_model = lambda img, analysis, fit, m: types.SimpleNamespace(space=space, pivot=PIVOT)

    def initial_avatar(m, sp, config):
        g = GaussianAvatar(_truth().model.head, space, config)
        t = _truth()
        params = g.init(jax.random.key(0), colors=np.asarray(t.params["gaussians"].colors) * 0.8)
        return Avatar(g, params)

    model.initial_avatar = initial_avatar
    synth = types.ModuleType("vasa3d_jax.portrait.synth")
    synth.synthesize = lambda m, latents, cams: _render(latents, cams)
    for name, mod in (("vasa3d_jax.face", face), ("vasa3d_jax.portrait.matte", matte),
                      ("vasa3d_jax.portrait.model", model), ("vasa3d_jax.portrait.synth", synth)):
        monkeypatch.setitem(sys.modules, name, mod)
    clips = [np.zeros((40, space.size), np.float32)]
    clips[0][:, space.index("AU26")] = np.linspace(0, 1, 40)
    monkeypatch.setattr(api, "training_views", _with_motion(api.training_views, clips))
    return photo


def _with_motion(fn, clips):
    def call(*args, generator=None, **kwargs):
        return fn(*args, motion=clips, **kwargs)
    return call


@pytest.mark.slow
def test_stages_cache_resume_and_outputs(tmp_path, monkeypatch):
    photo = _install(monkeypatch)
    # Interrupted after 3 steps, then resumed: the same avatar as one uninterrupted run.
    part = api.portrait_to_avatar(photo, "tiny", tmp_path / "a", progress=False, stop_after=3)
    assert part.fit_steps == 3 and not (tmp_path / "a" / "avatar.npz").exists()
    done = api.portrait_to_avatar(photo, "tiny", tmp_path / "a", progress=False)
    once = api.portrait_to_avatar(photo, "tiny", tmp_path / "b", progress=False)
    assert done.fit_steps == once.fit_steps == api.get_preset("tiny").fit.steps
    for a, b in zip(jax.tree.leaves(done.avatar.params), jax.tree.leaves(once.avatar.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    assert set(done.timings) == {"analyse", "model", "synthesise", "fit", "export"}
    # The anchor is frame 0 of the cached dataset, drawn by its weight.
    with np.load(tmp_path / "a" / "dataset.npz") as z:
        np.testing.assert_allclose(z["frames"][0], done.anchor.target)
        assert len(z["frames"]) == api.get_preset("tiny").sampling.num_frames + 1
    # A rerun loads the result and fits nothing.
    again = api.portrait_to_avatar(photo, "tiny", tmp_path / "a", progress=False)
    assert again.reused and again.fit_steps == done.fit_steps
    # Another photo in the same work directory is refused.
    with pytest.raises(ValueError, match="another portrait"):
        api.portrait_to_avatar(photo[::-1], "tiny", tmp_path / "a", progress=False)
    # What `vasa3d fit --portrait` writes: avatar.npz loadable by speak, previews, metrics.json.
    summary = api.fit_to_folder(photo, tmp_path / "out", "tiny", tmp_path / "a")
    assert summary["reused"]
    avatar = load_avatar(tmp_path / "out" / "avatar.npz")
    assert avatar.space == MotionSpace.builtin()
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["photo_view"]["psnr"] > 15 and 0 <= metrics["photo_view"]["lpips"] < 0.5
    assert (tmp_path / "out" / "contact_sheet.png").is_file() and (tmp_path / "out" / "turntable.mp4").is_file()
