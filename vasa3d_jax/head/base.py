"""``HeadModel``: one interface for FLAME and the built-in template head.

Both models are skinned meshes with the same five joints, in FLAME's order and kinematic tree:

    JOINTS = (global, neck, jaw, eye_l, eye_r),  parents = (-1, 0, 1, 1, 1)

and ``vertices(shape, expression, pose)`` evaluates, for each sample (``head/lbs.py`` eqs. 1-7):

    (1) T_s = T + B_S(shape) + Σ_e expression_e · D_E[..., e]
    (2) θ   = pose + expression · P_E                  (expression-driven joints; template: AU26->jaw)
    (3) v   = LBS(T_s, θ; J_regressor, W, posedirs)

* FLAME: B_S(β) = Σ_k β_k D_S[..., k] (PCA shape space, up to 300), D_E the expression PCA basis
  (up to 100), P_E = 0, pose correctives from the file.
* Template: B_S(shape) = reshape(shape, (V, 3)), a free per-vertex offset field (S = 3V) regularised
  by ``shape_prior`` (Laplacian energy, eq. 4 below); D_E the 20 action units; no pose correctives.

    (4) E(δ) = Σ_i ‖δ_i − mean_{j∈N(i)} δ_j‖²      (umbrella-operator Laplacian of the offsets)

No translation is applied: the avatar adds it (``z_pose``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from vasa3d_jax.head import lbs as lbs_lib

JOINTS = ("global", "neck", "jaw", "eye_l", "eye_r")  # FLAME 2020/2023 joint order
PARENTS = (-1, 0, 1, 1, 1)  # FLAME 2020/2023 kintree_table[0] (root's parent stored as -1)
POSE_SIZE = 3 * len(JOINTS)  # axis-angle per joint
REQUIRED_REGIONS = ("face", "mouth", "eyes", "scalp", "neck")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class HeadModel:
    """A parametric head mesh (FLAME or the built-in template) in the head frame.

    Head frame (DESIGN.md): metres, y up, z out of the face, origin near the head centre.

    v_template:        (V, 3) float32, rest-pose mean-identity vertices, metres
    faces:             (F, 3) int32, counter-clockwise seen from outside (normals point outward)
    face_region:       (F,) int32, index into ``region_names``
    shapedirs:         (V, 3, S) float32 identity basis, or None: per-vertex offsets (S = 3V)
    exprdirs:          (V, 3, E) float32 expression basis (metres per unit coefficient)
    expression_pose:   (E, 15) float32, axis-angle added to ``pose`` per unit expression, or None
    posedirs:          (V, 3, 36) float32 pose correctives on vec(R_j − I), j = 1..4, or None
    j_regressor:       (5, V) float32, joint locations from the shaped vertices
    lbs_weights:       (V, 5) float32, skinning weights (rows sum to 1)
    landmark_vertices: (468,) int32, MediaPipe face-mesh landmark -> vertex, or None
    lmk_faces_idx:     (L,) int32, static landmark embedding: triangle per landmark, or None
    lmk_bary_coords:   (L, 3) float32, barycentric coordinates in those triangles, or None
    laplacian_edges:   (K, 2) int32, undirected mesh edges for ``shape_prior`` (template), or None
    region_names:      static tuple[str, ...], contains at least REQUIRED_REGIONS
    kind:              static str, "flame" or "template"
    """

    v_template: jax.Array
    faces: jax.Array
    face_region: jax.Array
    shapedirs: jax.Array | None
    exprdirs: jax.Array
    expression_pose: jax.Array | None
    posedirs: jax.Array | None
    j_regressor: jax.Array
    lbs_weights: jax.Array
    landmark_vertices: jax.Array | None
    lmk_faces_idx: jax.Array | None
    lmk_bary_coords: jax.Array | None
    laplacian_edges: jax.Array | None
    region_names: tuple[str, ...] = dataclasses.field(metadata=dict(static=True))
    kind: str = dataclasses.field(metadata=dict(static=True))

    # ---- sizes ----------------------------------------------------------------------------------
    @property
    def num_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def num_faces(self) -> int:
        return self.faces.shape[0]

    @property
    def num_shape(self) -> int:
        return 3 * self.num_vertices if self.shapedirs is None else self.shapedirs.shape[-1]

    @property
    def num_expression(self) -> int:
        return self.exprdirs.shape[-1]

    @property
    def num_pose(self) -> int:
        return POSE_SIZE

    def region_id(self, name: str) -> int:
        try:
            return self.region_names.index(name)
        except ValueError:
            raise KeyError(f"no region {name!r}; this head has {self.region_names}") from None

    def region_mask(self, *names: str) -> jax.Array:
        """(F,) bool: triangles whose region is one of ``names``."""
        ids = jnp.array([self.region_id(n) for n in names], jnp.int32)
        return jnp.isin(self.face_region, ids)

    # ---- the model ------------------------------------------------------------------------------
    def vertices(self, shape: jax.Array, expression: jax.Array, pose: jax.Array) -> jax.Array:
        """Eqs. 1-3: shape (..., S), expression (..., E), pose (..., 15) -> vertices (..., V, 3).

        Leading dimensions broadcast against each other. Pose is axis-angle (radians) per joint in
        ``JOINTS`` order. A model with fewer shape/expression components than its file holds uses the
        first ones; pass exactly ``num_shape`` / ``num_expression`` values.
        """
        return self.vertices_and_joints(shape, expression, pose)[0]

    def vertices_and_joints(self, shape, expression, pose) -> tuple[jax.Array, jax.Array]:
        """Like ``vertices`` but also returns the posed joints (..., 5, 3)."""
        self._check(shape, expression, pose)
        fn = jnp.vectorize(self._single, signature="(s),(e),(p)->(v,c),(j,c)")
        return fn(shape, expression, pose)

    def _single(self, shape, expression, pose):
        if self.shapedirs is None:
            offsets = shape.reshape(self.num_vertices, 3)
        else:
            offsets = jnp.einsum("s,vcs->vc", shape, self.shapedirs)
        v_shaped = self.v_template + offsets + jnp.einsum("e,vce->vc", expression, self.exprdirs)
        if self.expression_pose is not None:
            pose = pose + expression @ self.expression_pose
        return lbs_lib.lbs(v_shaped, pose.reshape(len(JOINTS), 3), self.j_regressor, PARENTS,
                           self.lbs_weights, self.posedirs)

    def _check(self, shape, expression, pose) -> None:
        for name, x, want in (("shape", shape, self.num_shape),
                              ("expression", expression, self.num_expression),
                              ("pose", pose, POSE_SIZE)):
            if jnp.ndim(x) < 1 or jnp.shape(x)[-1] != want:
                raise ValueError(
                    f"{name} has shape {jnp.shape(x)} but this {self.kind} head expects (..., {want}); "
                    f"use zeros((..., {want})) for the neutral value")

    def neutral(self, batch: tuple[int, ...] = ()) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Zero (shape, expression, pose) with leading dims ``batch``."""
        return (jnp.zeros(batch + (self.num_shape,)), jnp.zeros(batch + (self.num_expression,)),
                jnp.zeros(batch + (POSE_SIZE,)))

    # ---- landmarks and priors -------------------------------------------------------------------
    def mediapipe_landmarks(self, verts: jax.Array) -> jax.Array:
        """(..., V, 3) -> (..., 468, 3): the MediaPipe face-mesh landmarks on these vertices."""
        if self.landmark_vertices is None:
            raise ValueError(f"this {self.kind} head has no MediaPipe landmark correspondence; "
                             "load one with load_flame(..., landmark_embedding=PATH)")
        return verts[..., self.landmark_vertices, :]

    def static_landmarks(self, verts: jax.Array) -> jax.Array:
        """(..., V, 3) -> (..., L, 3): landmarks of the static barycentric embedding."""
        if self.lmk_faces_idx is None:
            raise ValueError(f"this {self.kind} head has no static landmark embedding")
        tri = verts[..., self.faces[self.lmk_faces_idx], :]  # (..., L, 3, 3)
        return jnp.einsum("...lkc,lk->...lc", tri, self.lmk_bary_coords)

    def shape_prior(self, shape: jax.Array) -> jax.Array:
        """(..., S) -> (...,) identity regulariser.

        FLAME: Σ β_k² (the PCA coefficients are unit-variance). Template: eq. 4 in m².
        """
        if self.shapedirs is not None:
            return jnp.sum(shape**2, axis=-1)
        delta = shape.reshape(shape.shape[:-1] + (self.num_vertices, 3))
        i, j = self.laplacian_edges[:, 0], self.laplacian_edges[:, 1]
        v = self.num_vertices
        degree = jnp.zeros(v).at[i].add(1.0).at[j].add(1.0)
        nsum = jnp.zeros_like(delta).at[..., i, :].add(delta[..., j, :]).at[..., j, :].add(delta[..., i, :])
        lap = delta - nsum / jnp.maximum(degree, 1.0)[:, None]
        return jnp.sum(lap**2, axis=(-2, -1))

    def face_normals(self, verts: jax.Array) -> jax.Array:
        """(..., V, 3) -> (..., F, 3) unit outward triangle normals."""
        tri = verts[..., self.faces, :]
        n = jnp.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :])
        return n / jnp.maximum(jnp.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
