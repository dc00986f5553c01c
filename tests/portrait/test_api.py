"""The portrait -> avatar orchestration (stages, cache, resume, anchor weighting, outputs) on the
synthetic portrait (portrait/synthetic.py: a textured template head rendered at a known latent and
camera). Stage 1 (face analysis + encoder + matte) is replaced by the portrait's known truth; every
later stage is the real one."""

import json
import types

import jax
import numpy as np
import pytest

from vasa3d_jax.avatar.io import load_avatar
from vasa3d_jax.motion_space import MotionSpace
from vasa3d_jax.portrait import api
from vasa3d_jax.portrait.matte import matte_from_person
from vasa3d_jax.portrait.synthetic import synthetic_portrait

SIZE = 160


def _install(monkeypatch):
    sp = synthetic_portrait(SIZE)
    space = MotionSpace.builtin()

    def analyse(image, face=0):
        fit = types.SimpleNamespace(latents=sp.latent[None], identity=sp.shape, camera=lambda: sp.camera)
        analysis = types.SimpleNamespace(landmarks=sp.landmarks)  # the truth's own landmarks
        return api.Found(analysis=analysis, motion_fit=fit, matte=matte_from_person(sp.person, sp.landmarks[:, :2]),
                         faces_found=1, warnings=())

    monkeypatch.setattr(api, "analyse", analyse)
    clip = np.zeros((40, space.size), np.float32)
    clip[:, space.index("AU26")] = np.linspace(0, 1, 40)
    real = api.training_views
    monkeypatch.setattr(api, "training_views", lambda *a, generator=None, **k: real(*a, motion=[clip], **k))
    return sp.image


@pytest.mark.slow
def test_stages_cache_resume_and_outputs(tmp_path, monkeypatch):
    photo = _install(monkeypatch)
    steps = api.get_preset("tiny").fit.steps
    # Interrupted after 3 steps, then resumed: the same avatar as one uninterrupted run.
    part = api.portrait_to_avatar(photo, "tiny", tmp_path / "a", progress=False, stop_after=3)
    assert part.fit_steps == 3 and not (tmp_path / "a" / "avatar.npz").exists()
    done = api.portrait_to_avatar(photo, "tiny", tmp_path / "a", progress=False)
    once = api.portrait_to_avatar(photo, "tiny", tmp_path / "b", progress=False)
    assert done.fit_steps == once.fit_steps == steps and done.skipped_steps == 0
    for a, b in zip(jax.tree.leaves(done.avatar.params), jax.tree.leaves(once.avatar.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
    assert set(done.timings) == {"analyse", "model", "synthesise", "fit", "export"}
    # The anchor is frame 0 of the cached dataset.
    with np.load(tmp_path / "a" / "dataset.npz") as z:
        np.testing.assert_allclose(z["frames"][0], done.anchor.target)
        assert len(z["frames"]) == api.get_preset("tiny").sampling.num_frames + 1
    # A rerun loads the result and fits nothing; another photo in the same directory is refused.
    again = api.portrait_to_avatar(photo, "tiny", tmp_path / "a", progress=False)
    assert again.reused and again.fit_steps == steps
    with pytest.raises(ValueError, match="another portrait"):
        api.portrait_to_avatar(photo[::-1], "tiny", tmp_path / "a", progress=False)
    # What `vasa3d fit --portrait` writes: avatar.npz loadable by speak, previews, metrics.json.
    summary = api.fit_to_folder(photo, tmp_path / "out", "tiny", tmp_path / "a")
    assert summary["reused"]
    assert load_avatar(tmp_path / "out" / "avatar.npz").space == MotionSpace.builtin()
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    # Initialised from the photo: the photo view is already close after a few steps.
    assert metrics["photo_view"]["psnr"] > 20 and metrics["photo_view"]["lpips"] < 0.3, metrics["photo_view"]
    assert (tmp_path / "out" / "contact_sheet.png").is_file() and (tmp_path / "out" / "turntable.mp4").is_file()
