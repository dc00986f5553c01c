"""The portrait model on a synthetic portrait whose truth is known (synthetic.py): the synthesiser
gives the photo back at its latent and camera, matches the truth where the photo saw the surface at
novel views and expressions, and the initial avatar renders close to the photo before any fitting."""

import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.portrait import synthetic as syn
from vasa3d_jax.render import Camera, capacity_for, render, required_capacity

pytestmark = pytest.mark.slow
SIZE = 192


def psnr(a, b, mask):
    mask = np.asarray(mask, np.float64)
    err = ((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2 * mask[..., None]).sum()
    return float(-10 * np.log10(err / (3 * mask.sum())))


def cameras(cams):
    return Camera(viewmat=jnp.stack([c.viewmat for c in cams]), K=jnp.stack([c.K for c in cams]),
                  width=cams[0].width, height=cams[0].height)


@pytest.fixture(scope="module")
def portrait():
    from vasa3d_jax.portrait import build_from_fit, matte_from_person
    sp = syn.synthetic_portrait(SIZE)
    matte = matte_from_person(sp.person, sp.landmarks)
    pm = build_from_fit(sp.image, matte, latent=sp.latent, shape=sp.shape, camera=sp.camera)
    return sp, matte, pm


def test_model_is_consistent(portrait):
    sp, matte, pm = portrait
    assert pm.num_samples > pm.head.num_faces  # the face is subdivided
    for name in ("confidence", "fill", "color", "photo_xy"):
        assert np.isfinite(np.asarray(getattr(pm, name))).all(), name
    conf = np.asarray(pm.confidence)
    region = np.asarray(pm.region)
    face = region == pm.head.region_id("face")
    assert conf[face].mean() > 0.5  # the photo sees most of the face
    from vasa3d_jax.avatar.template import _inside
    from vasa3d_jax.portrait import texture as tex
    from vasa3d_jax.camera import project_points
    from vasa3d_jax.portrait.model import model_vertices
    inner = np.isin(region, [pm.head.region_id("mouth"), pm.head.region_id("teeth")])
    if float(pm.mouth_open) > tex.MOUTH_OPEN_RATIO:  # open: no lip sample takes a gap pixel
        xy_v = np.asarray(project_points(model_vertices(pm, pm.latent), pm.camera.viewmat, pm.camera.K)[0])
        in_gap = _inside(np.asarray(pm.photo_xy), tex.inner_lip_polygon(xy_v))
        assert in_gap[face].any() and conf[face & in_gap].max() == 0.0
        cavity = region == pm.head.region_id("mouth")
        assert conf[cavity].max() > 0.5  # the mouth seen through the gap takes its photo pixels
        teeth = region == pm.head.region_id("teeth")  # teeth: the photo's brightness, ivory's chroma,
        assert conf[teeth].max() == 0.0               # through the fill (texture.py eq. 5b)
    else:  # closed: cavity and teeth never take photo pixels
        assert conf[inner].max() == 0.0
    # A bald truth whose matte is its own silhouette needs (almost) no hair shell.
    assert float(np.max(pm.thickness)) < 0.015


def test_synthesize_gives_back_the_photo_and_the_truth_at_novel_views(portrait):
    from vasa3d_jax.portrait import synthesize_frames
    sp, matte, pm = portrait
    cams = [sp.camera, syn.camera_at(25, 5, SIZE), syn.camera_at(-25, -5, SIZE)]
    x_novel = np.array(sp.latent)
    x_novel[pm.space.index("AU12")] = 0.0  # smile off
    x_novel[pm.space.index("AU26")] = 0.3  # jaw drop
    x_novel[pm.space.index("rot_y")] = -0.1
    lat = np.stack([sp.latent, sp.latent, x_novel])
    fr = synthesize_frames(pm, lat, cameras(cams))
    assert fr.rgb.shape == (3, SIZE, SIZE, 3)
    assert psnr(fr.rgb[0], sp.image, matte.head) > 27.0
    truth, alpha = syn.render_truth(lat, cameras(cams))
    for i in (1, 2):
        seen = (np.asarray(fr.confidence[i]) > 0.5) & (alpha[i] > 0.5)
        assert seen.mean() > 0.1
        assert psnr(fr.rgb[i], truth[i], seen) > 22.0, i
    # The silhouettes agree (the head is where the truth is).
    iou = ((np.asarray(fr.alpha) > 0.5) & (alpha > 0.5)).sum() / ((np.asarray(fr.alpha) > 0.5) | (alpha > 0.5)).sum()
    assert iou > 0.9


def test_initial_avatar_renders_the_photo_before_fitting(portrait):
    from vasa3d_jax.portrait import initial_avatar
    sp, matte, pm = portrait
    av = initial_avatar(pm)
    cams = cameras([sp.camera, syn.camera_at(45, 0, SIZE)])
    (_, g), _ = av.model.apply(av.params, jnp.asarray(np.stack([sp.latent] * 2)))
    out = render(g, cams, jnp.ones(3), capacity=capacity_for(required_capacity(g, cams)))
    assert psnr(out.rgb[0], sp.image, matte.head) > 24.0
    truth, alpha = syn.render_truth(np.stack([sp.latent] * 2), cams)
    assert psnr(out.rgb[1], truth[1], alpha[1] > 0.5) > 18.0
