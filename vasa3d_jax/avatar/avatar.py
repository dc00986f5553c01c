"""The deformable Gaussian head: motion latent x = [z_dyn, z_pose] -> (G', G'').

VASA-3D's head (paper-notes.md §1.2): Gaussians bound to the triangles of a parametric head model
(binding.py, GaussianAvatars), moved in two stages.

Base deformation (deform.py eqs. (1)-(2)), each network with a fixed linear prior:

    (1)  (psi, theta_jaw, theta_eye)          = P_e z_dyn  + MLP_e(z_dyn)
    (2)  (theta_neck, theta_global, t)        = P_p z_pose + MLP_p(z_pose)
    (3)  V = head.vertices(beta, psi, [theta_global, theta_neck, theta_jaw, theta_eye]) + t
    (4)  G' = binding of the Gaussians to the triangles of V (binding.py eqs. (7)-(9))

The MLPs' output layers start at zero, so an untrained base is exactly the prior P_e, P_p: what
the motion space already says (``head.prior``: the pose of z_pose, named action units, AU26 to the
jaw, gaze to the eyes; zero for a learned code, whose M_e is trained).

Residual deformation (deform.py eqs. (3)-(5)): D_e for Gaussians whose parent triangle is in a
face region (``AvatarConfig.face_regions``), D_p for all others, each fed the canonical position p
(the Gaussian on the neutral head, beta only, normalised by the template's bounding box to about
[-1, 1]) and the frame's condition (z_dyn, eps_exp) or (z_pose, eps_pose). The residual is applied
to the local attributes, i.e. in the posed parent triangle's frame:

    (5)  mu_l'' = mu_l + d_mu                     (triangle units: a world offset k_f R_f d_mu)
    (6)  q_l''  = q(d_rot) (x) normalize(q_l)     d_rot an axis-angle in the triangle frame
    (7)  s_l''  = s_l + d_log_scale               (log space)
    (8)  c''    = c + d_color                     (RGB; with SH, the DC term gets d_color / C0)
    (9)  o''    = sigmoid(logit_o + d_opacity)    (logit space)
    (10) G'' = binding of (mu_l'', q_l'', s_l'') to the triangles of V

so a zero residual gives G'' = G' exactly. Inactive slots get opacity 0 in both (they render as
nothing).

Parameters are a dict: "gaussians" (gaussians.BoundGaussians, trainable), "binding"
(gaussians.Binding, integer state: keep it out of ``jax.grad``; see ``split_trainable``), "shape"
(beta, (S,)), "m_exp", "m_pose", "d_exp", "d_pose" (Flax variables).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.avatar import binding as bnd
from vasa3d_jax.avatar import deform
from vasa3d_jax.avatar import densify as dns
from vasa3d_jax.avatar import gaussians as gs
from vasa3d_jax.head import HeadModel
from vasa3d_jax.head.prior import JAW_OPEN_PER_AU26, base_priors
from vasa3d_jax.motion_space import MotionSpace
from vasa3d_jax.render.types import Gaussians


# Regions whose Gaussians D_e deforms by default (the rest go to D_p); names absent from a head
# model are ignored.
FACE_REGIONS = ("face", "mouth", "lips", "teeth", "eyes", "eyelids", "eyeballs", "nose")

# Preview/initial colours per region name (RGB); other regions get a fixed fallback palette.
REGION_COLORS = {
    "face": (0.93, 0.74, 0.62), "mouth": (0.75, 0.15, 0.2), "lips": (0.8, 0.3, 0.35),
    "teeth": (0.97, 0.97, 0.92), "eyes": (0.25, 0.45, 0.85), "eyelids": (0.85, 0.6, 0.5),
    "eyeballs": (0.95, 0.95, 0.98), "scalp": (0.35, 0.22, 0.12), "neck": (0.8, 0.62, 0.5),
    "ears": (0.9, 0.55, 0.45), "nose": (0.95, 0.65, 0.55),
}
_FALLBACK = ((0.2, 0.7, 0.3), (0.6, 0.3, 0.8), (0.9, 0.8, 0.2), (0.2, 0.8, 0.8), (0.5, 0.5, 0.5))


@dataclasses.dataclass(frozen=True)
class AvatarConfig:
    """Sizes and choices of the deformable head (defaults: paper where it says, else noted)."""

    per_triangle: int = 1  # Gaussians per triangle at init (GaussianAvatars: 1)
    bucket: int = gs.DEFAULT_BUCKET  # capacity grows in multiples of this many slots
    sh_degree: int | None = None  # None: RGB colours (paper: unspecified)
    base_hidden: int = 256  # M_e, M_p hidden units (paper [Z])
    base_layers: int = 3  # M_e, M_p fully connected layers (paper [Z])
    residual_width: int = 256  # D_e, D_p hidden units (paper: unspecified)
    residual_depth: int = 4  # D_e, D_p hidden layers (paper: unspecified)
    num_freqs: int = 4  # positional-encoding bands L (paper [Z])
    face_regions: tuple[str, ...] = FACE_REGIONS  # regions handled by D_e
    jaw_open_per_au26: float = JAW_OPEN_PER_AU26  # jaw pitch (rad) at AU26 = 1 (head.prior)


def region_colors(head: HeadModel) -> np.ndarray:
    """(F, 3) RGB per triangle from its region name (``REGION_COLORS``, then a fixed palette)."""
    palette = []
    for i, name in enumerate(head.region_names):
        palette.append(REGION_COLORS.get(name, _FALLBACK[i % len(_FALLBACK)]))
    return np.asarray(palette, np.float32)[np.asarray(head.face_region)]


def split_trainable(params: dict) -> tuple[dict, dict]:
    """(trainable floats, integer binding state); ``{**a, **b}`` puts them back together."""
    state = {"binding": params["binding"]}
    return {k: v for k, v in params.items() if k != "binding"}, state


class GaussianAvatar:
    """The deformable Gaussian head of one head model and motion space (static configuration).

    avatar = GaussianAvatar(head, MotionSpace.builtin())
    params = avatar.init(key, colors=region_colors(head))
    (g_base, g_final), aux = avatar.apply(params, x)     # x (..., D): G', G'' as render.Gaussians
    """

    def __init__(self, head: HeadModel, space: MotionSpace, config: AvatarConfig = AvatarConfig()):
        self.head, self.space, self.config = head, space, config
        self.faces = jnp.asarray(np.asarray(head.faces), jnp.int32)
        self.num_faces = int(self.faces.shape[0])
        names = tuple(head.region_names)
        face_ids = [i for i, n in enumerate(names) if n in config.face_regions]
        if not face_ids:
            raise ValueError(f"none of the face regions {config.face_regions} is among the head "
                             f"model's regions {names}; set AvatarConfig.face_regions")
        self.face_mask = jnp.asarray(np.isin(np.asarray(head.face_region), face_ids))
        v = np.asarray(head.v_template, np.float64)
        lo, hi = v.min(0), v.max(0)
        self.pos_center = jnp.asarray((lo + hi) / 2, jnp.float32)
        self.pos_scale = float(np.max(hi - lo) / 2)
        self.num_expression = int(head.num_expression)
        self.prior_exp, self.prior_pose = base_priors(space, head, config.jaw_open_per_au26)
        self.m_exp = deform.ExpressionMLP(self.num_expression, config.base_hidden, config.base_layers)
        self.m_pose = deform.PoseMLP(config.base_hidden, config.base_layers)
        self.d_exp = deform.ResidualMLP(config.residual_width, config.residual_depth, config.num_freqs)
        self.d_pose = deform.ResidualMLP(config.residual_width, config.residual_depth,
                                         config.num_freqs)

    # ---- parameters -----------------------------------------------------------------------------
    def init(self, key: jax.Array, colors=None) -> dict:
        """Fresh parameters: Gaussians on the neutral template (gaussians.init_bound_gaussians; colours
        None = random), beta = 0, base MLPs at their prior, residuals at zero."""
        return jax.jit(self._init)(key, None if colors is None else jnp.asarray(colors, jnp.float32))

    def _init(self, key, colors):
        k_g, k_me, k_mp, k_de, k_dp = jax.random.split(key, 5)
        shape = jnp.zeros((int(self.head.num_shape),), jnp.float32)
        g, b = gs.init_bound_gaussians(k_g, self.neutral_vertices(shape), self.faces,
                                       per_triangle=self.config.per_triangle, colors=colors,
                                       sh_degree=self.config.sh_degree, bucket=self.config.bucket)
        e_exp = self.num_expression + 9
        pos = jnp.zeros((1, 3), jnp.float32)
        return {
            "gaussians": g, "binding": b, "shape": shape,
            "m_exp": self.m_exp.init(k_me, jnp.zeros((self.space.dyn_size,), jnp.float32)),
            "m_pose": self.m_pose.init(k_mp, jnp.zeros((self.space.pose_size,), jnp.float32)),
            "d_exp": self.d_exp.init(k_de, pos, jnp.zeros((self.space.dyn_size + e_exp,))),
            "d_pose": self.d_pose.init(k_dp, pos, jnp.zeros((self.space.pose_size + 9,))),
        }

    def neutral_vertices(self, shape: jax.Array) -> jax.Array:
        """(V, 3) the head with identity ``shape`` and zero expression and pose."""
        return self.head.vertices(shape, jnp.zeros((self.num_expression,), jnp.float32),
                                  jnp.zeros((15,), jnp.float32))

    def face_scales(self, params: dict) -> jax.Array:
        """(F,) k_f of the neutral head (what densification measures Gaussian sizes against)."""
        return bnd.triangle_frames(self.neutral_vertices(params["shape"]), self.faces).scales

    # ---- eqs. (1)-(3) -------------------------------------------------------------------------------
    def base_deform(self, params: dict, z_dyn: jax.Array, z_pose: jax.Array) -> dict:
        """Eqs. (1)-(2) for one frame -> {"expression" (E,), "jaw_pose" (3,), "eye_pose" (6,),
        "neck_pose" (3,), "global_rot" (3,), "translation" (3,)}."""
        e = z_dyn @ self.prior_exp + self.m_exp.apply(params["m_exp"], z_dyn)
        p = z_pose @ self.prior_pose + self.m_pose.apply(params["m_pose"], z_pose)
        n = self.num_expression
        return {"expression": e[:n], "jaw_pose": e[n:n + 3], "eye_pose": e[n + 3:n + 9],
                "neck_pose": p[0:3], "global_rot": p[3:6], "translation": p[6:9]}

    def posed_vertices(self, params: dict, head_params: dict) -> jax.Array:
        """Eq. (3): (V, 3) vertices of the posed head."""
        pose = jnp.concatenate([head_params["global_rot"], head_params["neck_pose"],
                                head_params["jaw_pose"], head_params["eye_pose"]])
        v = self.head.vertices(params["shape"], head_params["expression"], pose)
        return v + head_params["translation"]

    # ---- the whole map ------------------------------------------------------------------------
    def apply(self, params: dict, x: jax.Array, residual: bool = True
              ) -> tuple[tuple[Gaussians, Gaussians], dict]:
        """x (..., D) motion latents -> ((G', G''), aux), both with x's leading axes.

        aux: the head parameters of eqs. (1)-(2) ("expression", "jaw_pose", ...), "vertices"
        (..., V, 3) and "residual" (..., C, 13), the raw residual of deform.py eq. (5) (zero on
        inactive slots), e.g. for an L2 penalty.

        residual=False skips D_e and D_p and uses r = 0, which is what they output when
        ``residual_is_zero(params)``: the same G'' without two MLPs over every Gaussian. A static
        choice (jit it as one); the caller decides it from the parameters, never by guess.
        """
        self.space.check(x)
        g, b = params["gaussians"], params["binding"]
        if b.capacity != g.capacity:
            raise ValueError(f"binding capacity {b.capacity} != gaussians capacity {g.capacity}")
        # Per-frame-independent inputs of the residual networks, computed once.
        neutral = bnd.gather_frames(
            bnd.triangle_frames(self.neutral_vertices(params["shape"]), self.faces), b.parent)
        canon, _, _ = bnd.local_to_world(g.means_local, g.quats_local, g.log_scales, neutral)
        canon = (canon - self.pos_center) / self.pos_scale
        in_face = self.face_mask[b.parent]

        def one(xi):
            return self._frame(params, canon, in_face, xi, residual)

        for _ in range(x.ndim - 1):
            one = jax.vmap(one)
        return one(x)

    def _frame(self, params, canon, in_face, x, residual=True):
        g, b = params["gaussians"], params["binding"]
        z_dyn, z_pose = self.space.split(x)
        hp = self.base_deform(params, z_dyn, z_pose)
        verts = self.posed_vertices(params, hp)
        frames = bnd.gather_frames(bnd.triangle_frames(verts, self.faces), b.parent)
        live = b.active.astype(jnp.float32)

        means, quats, scales = bnd.local_to_world(g.means_local, g.quats_local, g.log_scales, frames)
        g_base = Gaussians(means=means, quats=quats, scales=scales,
                           opacities=jax.nn.sigmoid(g.opacity_logits) * live, colors=g.colors)

        eps_exp = jnp.concatenate([hp["expression"], hp["jaw_pose"], hp["eye_pose"]])
        eps_pose = jnp.concatenate([hp["neck_pose"], hp["global_rot"], hp["translation"]])
        if residual:
            r_e = self.d_exp.apply(params["d_exp"], canon, jnp.concatenate([z_dyn, eps_exp]))
            r_p = self.d_pose.apply(params["d_pose"], canon, jnp.concatenate([z_pose, eps_pose]))
            r = jnp.where(in_face[:, None], r_e, r_p) * live[:, None]
        else:
            r = jnp.zeros((g.capacity, deform.RESIDUAL_DIM), means.dtype)
        d = deform.split_residual(r)

        quats_local = bnd.quat_multiply(bnd.axis_angle_to_quat(d["d_rot"]),
                                        bnd.normalize(g.quats_local))
        means2, quats2, scales2 = bnd.local_to_world(
            g.means_local + d["d_mu"], quats_local, g.log_scales + d["d_log_scale"], frames)
        if g.colors.ndim == 2:
            colors2 = g.colors + d["d_color"]
        else:
            colors2 = g.colors.at[:, 0, :].add(d["d_color"] / gs.SH_C0)
        g_final = Gaussians(means=means2, quats=quats2, scales=scales2,
                            opacities=jax.nn.sigmoid(g.opacity_logits + d["d_opacity"]) * live,
                            colors=colors2)
        return (g_base, g_final), {**hp, "vertices": verts, "residual": r}

    # ---- densification ------------------------------------------------------------------------
    def densify(self, params: dict, stats: dns.DensifyStats, key: jax.Array,
                config: dns.DensifyConfig):
        """densify.densify_and_prune_grow on the avatar's Gaussians.

        Returns (params, stats, report, (old_capacity, new_capacity)).
        """
        g, b, stats, report, grown = dns.densify_and_prune_grow(
            params["gaussians"], params["binding"], stats, key, self.face_scales(params), config,
            self.config.bucket)
        return {**params, "gaussians": g, "binding": b}, stats, report, grown


def residual_is_zero(params: dict) -> bool:
    """True when D_e and D_p output exactly 0 for every input: their output layers (kernel and bias)
    are all zero and every other weight is finite (so the last hidden layer is finite and h W + b
    = 0 exactly). Then ``apply(..., residual=False)`` gives the same G''. Checked on the values
    (e.g. the template avatar or an avatar not yet fitted), not declared by a flag."""
    for name in ("d_exp", "d_pose"):
        layers = params[name]["params"]
        out = layers["output"]
        if any(np.any(np.asarray(jax.device_get(a)) != 0) for a in jax.tree.leaves(out)):
            return False
        if not all(np.all(np.isfinite(np.asarray(jax.device_get(a)))) for a in jax.tree.leaves(layers)):
            return False
    return True
