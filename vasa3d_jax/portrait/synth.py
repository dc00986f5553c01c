"""Training frames from one portrait: mesh-guided photo warping.

The built-in synthesiser (VASA-1's decoder in the paper, paper-notes.md §1.3; no such model ships,
so this one is made from the portrait itself). For a motion latent x and a camera, the head is
posed by x (model.py eq. 1) and its surface samples (surface.py eq. 1) are splatted as flat, nearly
opaque Gaussians whose features are not colours but what the photo says about them
(``render_features``): f_s = (w_s u_s / (W, H), w_s, fill_s, m_s u'_s / (W, H), m_s), with u_s the
sample's pixel in the photo, w_s its confidence (texture.py eq. 1), fill_s its fill colour, u'_s and
m_s its mirror point's pixel and share (texture.py eq. 3). Per pixel, with A the splatted alpha and
O the composited channels,

    (1) w = O_w / A,  u = (W, H) O_uw / O_w,  m = O_m / A,  u' = (W, H) O_um / O_m,  fill = O_fill / A
    (2) I = A (w photo(u) + m photo(u') + (1 - w - m) fill) + (1 - A) bg     photo(.): bilinear

so photo detail finer than the sample spacing survives (the photo is sampled per pixel, only the
smooth coordinate field u is interpolated by the splats), the photo's own pixels come back at the
photo's latent and camera, and what the photo did not see is the fill. A, w are returned with the
frames: A as the head mask, w as a per-pixel confidence for weighting the fitting loss
(portrait-notes.md §5.3).

``Synthesizer`` is the protocol a user's own generator implements to replace this one.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.portrait.model import PortraitModel, model_vertices
from vasa3d_jax.portrait.surface import bilinear, sample_gaussians
from vasa3d_jax.render import (Camera, OverflowReport, capacity_for, isect_need, render_features,
                               run_checked)

MIRROR_TRUST = 0.5  # a mirrored pixel counts half a seen one in the returned confidence
DEFAULT_BATCH = 8  # frames per compiled call (memory of the batched binning grows with it)


class Synthesizer(Protocol):
    """Anything that renders training frames of a portrait for given motion latents and cameras:
    (portrait model, latents (N, D), cameras: a batched ``render.Camera`` (N, 4, 4) / (N, 3, 3))
    -> frames (N, H, W, 3) float32 RGB in [0, 1] (H, W = the cameras' size)."""

    def __call__(self, portrait: PortraitModel, latents: jax.Array, cameras: Camera) -> jax.Array:
        ...


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SynthFrames:
    """rgb (N, H, W, 3) eq. 2; alpha (N, H, W) head coverage; confidence (N, H, W) w + m / 2 of
    eq. 1 (1: the photo saw this pixel's surface; 0: fill)."""

    rgb: jax.Array
    alpha: jax.Array
    confidence: jax.Array


def _gaussians(pm: PortraitModel, latents):
    """The surface samples' Gaussians at each of ``latents (B, D)``: batch (B, P, ...)."""
    def one(x):
        return sample_gaussians(pm.head.faces, pm.parent, pm.bary, pm.level, model_vertices(pm, x))
    return jax.vmap(one)(latents)


@jax.jit
def _needs(pm: PortraitModel, latents, cameras: Camera):
    return isect_need(_gaussians(pm, latents), cameras)


@functools.partial(jax.jit, static_argnames=("capacity",))
def _synth(pm: PortraitModel, latents, cameras: Camera, background, *, capacity):
    """Eqs. 1-2 for a batch: ((rgb, alpha, confidence), overflow (B,), need (B,))."""
    h_img, w_img = pm.image.shape[:2]
    scale = jnp.asarray([w_img, h_img], jnp.float32)
    w, m = pm.confidence[:, None], pm.mirror_confidence[:, None]
    feats = jnp.concatenate([w * pm.photo_xy / scale, w, pm.fill, m * pm.mirror_xy / scale, m], axis=1)
    r = render_features(_gaussians(pm, latents), feats, cameras, capacity=capacity)
    out, alpha = r.features, r.alpha
    a = jnp.maximum(alpha, 1e-6)[..., None]
    ow = out[..., 2:3]
    xy = out[..., 0:2] / jnp.maximum(ow, 1e-6) * scale  # eq. 1
    w = jnp.clip(ow / a, 0.0, 1.0)
    fill = out[..., 3:6] / a
    om = out[..., 8:9]
    xy_m = out[..., 6:8] / jnp.maximum(om, 1e-6) * scale
    m = jnp.clip(om / a, 0.0, 1.0 - w)
    surface = w * bilinear(pm.image, xy) + m * bilinear(pm.image, xy_m) + (1 - w - m) * fill
    rgb = alpha[..., None] * surface + (1 - alpha[..., None]) * background
    conf = (w + MIRROR_TRUST * m)[..., 0] * (alpha > 1e-3)
    return (jnp.clip(rgb, 0.0, 1.0), alpha, conf), r.isect_overflow, r.num_isects


def synthesize_frames(pm: PortraitModel, latents, cameras: Camera, *, background=(1.0, 1.0, 1.0),
                      batch: int = DEFAULT_BATCH) -> SynthFrames:
    """Eqs. 1-2 for N (latent, camera) pairs: latents (N, D) in ``pm.space``; cameras a batched
    ``Camera`` (viewmat (N, 4, 4), K (N, 3, 3)) or one camera for every latent. Rendered ``batch``
    frames per compiled call; the splatting capacity is measured on the frames and follows the one
    policy (``render/capacity.py``: grown and re-rendered on overflow, never truncated)."""
    latents = jnp.asarray(latents, jnp.float32)
    if latents.ndim != 2:
        raise ValueError(f"latents must be (N, D); got {latents.shape}")
    pm.space.check(latents)
    n = latents.shape[0]
    vm = jnp.broadcast_to(jnp.asarray(cameras.viewmat, jnp.float32), (n, 4, 4))
    ks = jnp.broadcast_to(jnp.asarray(cameras.K, jnp.float32), (n, 3, 3))
    bg = jnp.asarray(background, jnp.float32)
    batch = max(1, min(batch, n))
    pad = (-n) % batch
    if pad:
        latents = jnp.concatenate([latents, jnp.repeat(latents[-1:], pad, 0)])
        vm = jnp.concatenate([vm, jnp.repeat(vm[-1:], pad, 0)])
        ks = jnp.concatenate([ks, jnp.repeat(ks[-1:], pad, 0)])
    chunks = [(latents[i:i + batch], cameras.replace(viewmat=vm[i:i + batch], K=ks[i:i + batch]))
              for i in range(0, n + pad, batch)]
    report = OverflowReport(capacity_for([np.max(_needs(pm, x, cam)) for x, cam in chunks]))

    def checked(x, cam):
        return run_checked(lambda cap: _synth(pm, x, cam, bg, capacity=cap), report, what="synthesis")

    outs = [checked(x, cam) for x, cam in chunks]
    rgb, alpha, conf = (jnp.concatenate(p)[:n] for p in zip(*outs))
    return SynthFrames(rgb=rgb, alpha=alpha, confidence=conf)


def synthesize(pm: PortraitModel, latents, cameras: Camera, **kw) -> jax.Array:
    """The built-in ``Synthesizer``: frames (N, H, W, 3) (see ``synthesize_frames``)."""
    return synthesize_frames(pm, latents, cameras, **kw).rgb
