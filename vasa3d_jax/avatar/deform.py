"""The networks of VASA-3D's two deformation stages (paper-notes.md §1.2).

Base deformation (motion latent -> head-model parameters):

    (1)  eps_exp  = (psi, theta_jaw, theta_eye) = M_e(z_dyn)         expression (E), jaw (3), eyes (6)
    (2)  eps_pose = (theta_neck, theta_global, t) = M_p(z_pose)      neck (3), global (3), transl. (3)

M_e and M_p are 3-layer fully connected networks with 256 hidden units and ReLU ([Z] in
paper-notes.md): Dense(256) -> ReLU -> Dense(256) -> ReLU -> Dense(out). The avatar (avatar.py)
adds a fixed linear prior to each (M(z) = P z + MLP(z)); the last layer starts at zero, so an
untrained base is exactly the prior.

Residual ("VAS") deformation, per Gaussian i with canonical position p_i:

    (3)  gamma(p) = (p, sin(2^0 pi p), cos(2^0 pi p), ..., sin(2^{L-1} pi p), cos(2^{L-1} pi p)),
         L = 4 ([Z]; NeRF's encoding, Mildenhall et al. 2020, eq. 4, keeping the raw input)
    (4)  dg_i = D_e(gamma(p_i), z_dyn, eps_exp)    for Gaussians on face-region triangles
         dg_j = D_p(gamma(p_j), z_pose, eps_pose)  for the others (neck, scalp, ...)
    (5)  dg = (d_mu (3), d_rot (3, axis-angle), d_log_scale (3), d_color (3), d_opacity_logit (1))

D_e and D_p are MLPs of ``depth`` hidden ReLU layers of ``width`` units (the paper leaves both open;
default 4 x 256 as NeRF-style heads) and a zero-initialised output layer, so an untrained residual
is exactly zero and G'' = G'. The first layer acts on concat(gamma(p), cond); it is computed as
W_p gamma(p) + (W_c cond + b), the same affine map, so the per-frame part is evaluated once per frame
instead of once per Gaussian. How the residual is applied is documented in avatar.py.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# Residual channels of eq. (5), in order.
RESIDUAL_SIZES = (("d_mu", 3), ("d_rot", 3), ("d_log_scale", 3), ("d_color", 3), ("d_opacity", 1))
RESIDUAL_DIM = sum(n for _, n in RESIDUAL_SIZES)


def positional_encoding(x: jax.Array, num_freqs: int) -> jax.Array:
    """Eq. (3): ``(..., d) -> (..., d * (1 + 2 L))``; x should be normalised to about [-1, 1]."""
    freqs = (2.0 ** jnp.arange(num_freqs)) * jnp.pi
    xf = x[..., None, :] * freqs[:, None]  # (..., L, d)
    enc = jnp.concatenate([jnp.sin(xf), jnp.cos(xf)], axis=-2).reshape(*x.shape[:-1], -1)
    return jnp.concatenate([x, enc], axis=-1)


def split_residual(r: jax.Array) -> dict[str, jax.Array]:
    """``(..., 13) -> {"d_mu": (..., 3), "d_rot": (..., 3), ..., "d_opacity": (...)}``."""
    out, i = {}, 0
    for name, n in RESIDUAL_SIZES:
        out[name] = r[..., i] if (name == "d_opacity") else r[..., i:i + n]
        i += n
    return out


class MLP(nn.Module):
    """ReLU MLP: ``len(hidden)`` hidden layers, then a linear output layer."""

    hidden: Sequence[int]  # widths of the hidden layers
    out: int  # output size
    zero_init_output: bool = True  # start the output layer at zero (the network starts as 0)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, w in enumerate(self.hidden):
            x = nn.relu(nn.Dense(w, name=f"hidden_{i}")(x))
        init = nn.initializers.zeros if self.zero_init_output else nn.linear.default_kernel_init
        return nn.Dense(self.out, kernel_init=init, name="output")(x)


class ExpressionMLP(nn.Module):
    """M_e of eq. (1) without its prior: ``z_dyn (..., D_dyn) -> (..., E + 3 + 6)``."""

    num_expression: int  # E, the head model's expression size
    hidden: int = 256  # paper: 256 hidden units
    num_layers: int = 3  # paper: 3 fully connected layers (2 hidden + output)

    @nn.compact
    def __call__(self, z_dyn: jax.Array) -> jax.Array:
        return MLP((self.hidden,) * (self.num_layers - 1), self.num_expression + 9)(z_dyn)


class PoseMLP(nn.Module):
    """M_p of eq. (2) without its prior: ``z_pose (..., 6) -> (..., 9)`` (neck, global, t)."""

    hidden: int = 256  # paper: 256 hidden units
    num_layers: int = 3  # paper: 3 fully connected layers (2 hidden + output)

    @nn.compact
    def __call__(self, z_pose: jax.Array) -> jax.Array:
        return MLP((self.hidden,) * (self.num_layers - 1), 9)(z_pose)


class ResidualMLP(nn.Module):
    """D_e or D_p of eq. (4): per-Gaussian residuals from the position and a per-frame condition.

    __call__(positions (N, 3) canonical, normalised to about [-1, 1]; cond (C,)) -> (N, 13), eq. (5).
    """

    width: int = 256  # hidden units (paper: unspecified)
    depth: int = 4  # hidden layers (paper: unspecified)
    num_freqs: int = 4  # L of eq. (3) (paper [Z]: L = 4)

    @nn.compact
    def __call__(self, positions: jax.Array, cond: jax.Array) -> jax.Array:
        if self.depth < 1:
            raise ValueError(f"ResidualMLP needs depth >= 1; got {self.depth=}")
        enc = positional_encoding(positions, self.num_freqs)
        h = nn.Dense(self.width, use_bias=False, name="input_position")(enc)
        h = nn.relu(h + nn.Dense(self.width, name="input_condition")(cond))
        for i in range(1, self.depth):
            h = nn.relu(nn.Dense(self.width, name=f"hidden_{i}")(h))
        return nn.Dense(RESIDUAL_DIM, kernel_init=nn.initializers.zeros, name="output")(h)
