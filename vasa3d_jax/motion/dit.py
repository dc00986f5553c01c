"""VASA-1's motion denoiser: a transformer encoder over one token sequence (arXiv 2404.10667 §3.2).

The noisy motion window X_t (W frames) and every condition are concatenated along time into one
sequence of tokens (paper-notes.md §2.2), in this order::

    [ t | g | d | e | X_pre (K) | A_pre (K) | A (W) | X_t (W) ]

* t: diffusion timestep, sinusoidal embedding (Vaswani et al. 2017) through a 2-layer MLP;
* g = (θ, φ) main gaze, d head-to-camera distance, e emotion offset: one linear token each;
* X_pre, A_pre: the last K frames of the previous window's motion and audio features;
* A: the window's audio features, one token per frame; X_t: the noisy motion, one token per frame.

A dropped condition (classifier-free guidance, condition dropout, missing labels, audio truncated
at the window end) is replaced by a learned null token of its kind, so "no gaze" and "gaze = 0"
differ. Tokens that belong to a frame get the sinusoidal embedding of its frame index (X_pre and
A_pre at −K..−1, A and X_t at 0..W−1, so audio and motion of a frame share a position); every token
also gets a learned embedding of its kind. With ``audio_to_motion_tokens`` (ours, used by the shipped
model) frame i's audio token is also added to its X_t token: a frame-exact audio → motion path that
attention otherwise has to discover through the positions; on the synthetic corpus lip-sync did not
emerge within the ~300 steps our CPU budget allows without it (assets/README.md).
Blocks are pre-LayerNorm (Xiong et al. 2020, arXiv 2002.04745). The outputs at the X_t tokens are projected to the clean window X̂_0 (x_0 prediction).
The paper leaves the embeddings and token projections unspecified (paper-notes.md §2.5); the
choices above are ours.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from vasa3d_jax.motion_space import MotionSpace

HSEMOTION_CLASSES = 8  # HSEmotion (enet_b0_8): the 8 AffectNet expressions VASA-1's e averages
TOKEN_KINDS = ("t", "gaze", "distance", "emotion", "prev_motion", "prev_audio", "audio", "motion")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Conditions:
    """Everything the denoiser is conditioned on, for a batch of B windows (normalised units).

    audio:         (B, W, F) audio features of the window's frames.
    audio_mask:    (B, W) bool, False where a frame's audio is absent (dropped or truncated).
    prev_motion:   (B, K, D) the last K frames of the previous window's motion.
    prev_audio:    (B, K, F) the last K frames of the previous window's audio features.
    prev_mask:     (B,) bool, False when there is no previous window (or it is dropped).
    gaze:          (B, 2) main gaze (θ, φ), radians.
    gaze_mask:     (B,) bool.
    distance:      (B,) head-to-camera distance (normalised).
    distance_mask: (B,) bool.
    emotion:       (B, E) emotion offset.
    emotion_mask:  (B,) bool.
    """

    audio: jnp.ndarray
    audio_mask: jnp.ndarray
    prev_motion: jnp.ndarray
    prev_audio: jnp.ndarray
    prev_mask: jnp.ndarray
    gaze: jnp.ndarray
    gaze_mask: jnp.ndarray
    distance: jnp.ndarray
    distance_mask: jnp.ndarray
    emotion: jnp.ndarray
    emotion_mask: jnp.ndarray

    def replace(self, **changes) -> "Conditions":
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class DiTConfig:
    """Sizes of the denoiser. Paper default: 8 layers, width 512, 8 heads (VASA-1 §4.1)."""

    motion_size: int = 28  # D: MotionSpace.builtin().size (22 z_dyn + 6 z_pose)
    feature_size: int = 384  # F: Whisper tiny.en encoder width
    emotion_size: int = HSEMOTION_CLASSES  # E
    window: int = 50  # W frames per window (VASA-1-hack's W; paper-notes.md §2.2)
    context: int = 10  # K frames of previous-window context (ibid.)
    num_layers: int = 8
    width: int = 512
    num_heads: int = 8
    mlp_ratio: int = 4  # MLP hidden = mlp_ratio · width (Vaswani et al. 2017)
    audio_to_motion_tokens: bool = False  # ours: also add frame i's audio token to its X_t token

    @classmethod
    def for_space(cls, space: MotionSpace, **kwargs) -> "DiTConfig":
        return cls(motion_size=space.size, **kwargs)

    @property
    def num_tokens(self) -> int:
        return 4 + 2 * self.context + 2 * self.window

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def sinusoidal_embedding(x: jnp.ndarray, dim: int, max_period: float = 10_000.0) -> jnp.ndarray:
    """``x (...,) -> (..., dim)``: [cos(x·ω_i), sin(x·ω_i)], ω_i = max_period^(−i/(dim/2))
    (Vaswani et al. 2017, §3.5)."""
    half = dim // 2
    freqs = jnp.exp(-jnp.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = x.astype(jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)


class Block(nn.Module):
    width: int  # token width
    num_heads: int  # attention heads
    mlp_ratio: int  # MLP hidden width / token width

    @nn.compact
    def __call__(self, h: jnp.ndarray) -> jnp.ndarray:
        y = nn.LayerNorm()(h)
        h = h + nn.MultiHeadDotProductAttention(num_heads=self.num_heads, qkv_features=self.width)(y, y)
        y = nn.LayerNorm()(h)
        y = nn.Dense(self.mlp_ratio * self.width)(y)
        return h + nn.Dense(self.width)(nn.gelu(y))


class MotionDiT(nn.Module):
    """``(x_t (B, W, D), t (B,), Conditions) -> (x̂_0 (B, W, D), aux)``; aux = {"tokens": (B, N, C)}."""

    config: DiTConfig  # sizes (DiTConfig)

    def _token(self, name: str, x: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
        """Linear token of ``x (B, ..., in)``, replaced by a learned null token where ``mask`` is
        False (``mask`` broadcasts against ``x``'s leading axes)."""
        tok = nn.Dense(self.config.width, name=f"{name}_proj")(x)
        null = self.param(f"{name}_null", nn.initializers.normal(0.02), (self.config.width,))
        return jnp.where(mask[..., None], tok, null)

    @nn.compact
    def __call__(self, x_t: jnp.ndarray, t: jnp.ndarray, cond: Conditions):
        c = self.config
        b, w, d = x_t.shape
        if (w, d) != (c.window, c.motion_size):
            raise ValueError(f"x_t has shape {x_t.shape}; this model takes (B, {c.window}, "
                             f"{c.motion_size}) windows")
        if cond.audio.shape[1:] != (w, c.feature_size) or cond.prev_motion.shape[1] != c.context:
            raise ValueError(f"audio {cond.audio.shape} / prev_motion {cond.prev_motion.shape} do not "
                             f"match W={c.window}, K={c.context}, F={c.feature_size}")
        ones = jnp.ones((b,), bool)
        audio_tok = self._token("audio", cond.audio, cond.audio_mask)

        t_emb = sinusoidal_embedding(t, c.width)
        t_tok = nn.Dense(c.width, name="t_mlp_out")(nn.silu(nn.Dense(c.width, name="t_mlp_in")(t_emb)))
        groups = [
            t_tok[:, None],
            self._token("gaze", cond.gaze, cond.gaze_mask)[:, None],
            self._token("distance", cond.distance[:, None], cond.distance_mask)[:, None],
            self._token("emotion", cond.emotion, cond.emotion_mask)[:, None],
            self._token("prev_motion", cond.prev_motion, cond.prev_mask[:, None]),
            self._token("prev_audio", cond.prev_audio, cond.prev_mask[:, None]),
            audio_tok,
            self._token("motion", x_t, ones[:, None]) + (audio_tok if c.audio_to_motion_tokens else 0.0),
        ]
        sizes = [1, 1, 1, 1, c.context, c.context, w, w]
        kind = jnp.concatenate([jnp.full((n,), i) for i, n in enumerate(sizes)])
        kind_emb = self.param("kind_embedding", nn.initializers.normal(0.02), (len(TOKEN_KINDS), c.width))
        frame = jnp.concatenate([jnp.zeros(4), jnp.arange(-c.context, 0), jnp.arange(-c.context, 0),
                                 jnp.arange(w), jnp.arange(w)])
        is_frame = jnp.arange(c.num_tokens) >= 4
        pos = jnp.where(is_frame[:, None], sinusoidal_embedding(frame, c.width), 0.0) + kind_emb[kind]

        h = jnp.concatenate(groups, axis=1) + pos
        for i in range(c.num_layers):
            h = Block(c.width, c.num_heads, c.mlp_ratio, name=f"block_{i}")(h)
        h = nn.LayerNorm(name="final_norm")(h)
        x0 = nn.Dense(d, name="out_proj")(h[:, -w:])
        return x0, {"tokens": h}


def init_params(config: DiTConfig, key: jax.Array) -> dict:
    """Parameters of ``MotionDiT(config)`` for a batch-1 dummy input."""
    model = MotionDiT(config)
    x = jnp.zeros((1, config.window, config.motion_size))
    return model.init(key, x, jnp.ones((1,), jnp.int32), dummy_conditions(config, 1))


def dummy_conditions(config: DiTConfig, batch: int) -> Conditions:
    """All-absent conditions of the right shapes (every mask False)."""
    b, w, k = batch, config.window, config.context
    no = jnp.zeros((b,), bool)
    return Conditions(
        audio=jnp.zeros((b, w, config.feature_size)), audio_mask=jnp.zeros((b, w), bool),
        prev_motion=jnp.zeros((b, k, config.motion_size)), prev_audio=jnp.zeros((b, k, config.feature_size)),
        prev_mask=no, gaze=jnp.zeros((b, 2)), gaze_mask=no, distance=jnp.zeros((b,)), distance_mask=no,
        emotion=jnp.zeros((b, config.emotion_size)), emotion_mask=no)


def count_params(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))
