"""Multi-scale patch discriminators and the hinge adversarial loss.

VASA-3D uses three multi-scale patch discriminators with weight 0.001 (paper-notes.md §1.4 [Z]); the
loss form is unspecified there. The architecture follows pix2pixHD (Wang et al., CVPR 2018, §3.2,
``MultiscaleDiscriminator`` / ``NLayerDiscriminator``): the same PatchGAN at scales 1, 1/2, 1/4 of
the image, each downsampling by a 3×3, stride-2 average pool that ignores padding. Each PatchGAN is

    conv4×4/2 (F) → LReLU → [conv4×4/2 (min(2^k F, 8F)) → LReLU] × (L-1)
                 → conv4×4/1 (min(2^L F, 8F)) → LReLU → conv4×4/1 (1)          patch logits

without normalisation layers: fitting batches hold a few frames of one identity, and instance
statistics on the few-pixel maps of the coarsest scale are degenerate.

Hinge loss (Lim & Ye 2017, "Geometric GAN"; as in SAGAN and BigGAN), averaged over patches and over
the S scales:

    (1)  L_D = 1/S Σ_s [ mean relu(1 - D_s(real)) + mean relu(1 + D_s(fake)) ]
    (2)  L_G = -1/S Σ_s mean D_s(fake)
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

LEAKY_SLOPE = 0.2  # pix2pixHD NLayerDiscriminator: LeakyReLU(0.2)
KERNEL = 4  # pix2pixHD: kw = 4, padding ceil((4 - 1) / 2) = 2
PAD = 2


class PatchDiscriminator(nn.Module):
    """One PatchGAN: images (B, H, W, 3) in [0, 1] -> patch logits (B, h, w, 1)."""

    features: int = 64  # channels of the first convolution (pix2pixHD ndf)
    num_layers: int = 3  # stride-2 convolutions (pix2pixHD n_layers_D)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = 2.0 * x - 1.0
        width = self.features
        for _ in range(self.num_layers):
            x = nn.leaky_relu(nn.Conv(width, (KERNEL, KERNEL), strides=2, padding=PAD)(x), LEAKY_SLOPE)
            width = min(2 * width, 8 * self.features)
        x = nn.leaky_relu(nn.Conv(width, (KERNEL, KERNEL), strides=1, padding=PAD)(x), LEAKY_SLOPE)
        return nn.Conv(1, (KERNEL, KERNEL), strides=1, padding=PAD)(x)


class MultiScaleDiscriminator(nn.Module):
    """``num_scales`` PatchGANs on successively halved images: (B, H, W, 3) -> tuple of logit maps."""

    num_scales: int = 3  # VASA-3D [Z]: three multi-scale patch discriminators
    features: int = 64  # first-layer channels of every PatchGAN
    num_layers: int = 3  # stride-2 convolutions of every PatchGAN

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, ...]:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"the discriminator takes (B, H, W, 3) images; got shape {x.shape}")
        logits = []
        for s in range(self.num_scales):
            if s:
                x = nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)),
                                count_include_pad=False)
            logits.append(PatchDiscriminator(self.features, self.num_layers, name=f"scale{s}")(x))
        return tuple(logits)


def discriminator_hinge_loss(real_logits: Sequence[jax.Array], fake_logits: Sequence[jax.Array]) -> jax.Array:
    """L_D (1): scalar, from the per-scale logits of real and generated images."""
    terms = [jnp.mean(jax.nn.relu(1.0 - r)) + jnp.mean(jax.nn.relu(1.0 + f))
             for r, f in zip(real_logits, fake_logits, strict=True)]
    return sum(terms) / len(terms)


def generator_hinge_loss(fake_logits: Sequence[jax.Array]) -> jax.Array:
    """L_G (2): scalar, from the per-scale logits of generated images."""
    return -sum(jnp.mean(f) for f in fake_logits) / len(fake_logits)
