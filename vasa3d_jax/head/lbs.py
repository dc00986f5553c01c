"""Linear blend skinning with blendshapes and pose correctives (SMPL/FLAME).

For one sample, with template T (V,3), shape/expression blendshapes, joint regressor 𝒥 (J,V),
kinematic tree ``parents`` and skinning weights W (V,J) (Loper et al., SMPL, SIGGRAPH Asia 2015,
eqs. 2-10; Li et al., FLAME, SIGGRAPH Asia 2017, eqs. 1-5):

    (1) T_s = T + B_S(β) + B_E(ψ)                 blendshapes, B(x) = Σ_k x_k D[..., k]
    (2) J = 𝒥 T_s                                  joint locations follow the identity
    (3) R_j = exp([θ_j]_×)                         Rodrigues, θ_j axis-angle (radians)
    (4) T_p = T_s + Σ_{j≥1} vec(R_j - I) · P       pose correctives on the non-root joints
    (5) G_j = G_{parent(j)} · [R_j | J_j - J_{parent(j)}],   G_0 = [R_0 | J_0]
    (6) G'_j = G_j · [I | -J_j]                     remove the rest pose
    (7) v_i = Σ_j W_ij G'_j · [T_p,i ; 1]

The same maths as smplx 0.1.28 ``smplx/lbs.py::lbs`` (which the FLAME tests compare against);
written fresh for JAX: pure, jittable, differentiable at θ = 0 (eq. 3 uses a Taylor branch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vasa3d_jax.geometry import rodrigues  # eq. 3

def rigid_transforms(rot: jax.Array, joints: jax.Array, parents: tuple[int, ...]) -> jax.Array:
    """Eqs. 5-6: per-joint rotations (J,3,3) and rest joints (J,3) -> skinning transforms (J,4,4).

    ``parents[j] < j`` for every non-root joint (topological order, as SMPL/FLAME files store it).
    """
    num = len(parents)
    rel = joints - jnp.concatenate([jnp.zeros((1, 3), joints.dtype), joints[jnp.array(parents[1:])]])
    local = jnp.concatenate([rot, rel[:, :, None]], axis=-1)  # (J, 3, 4)
    bottom = jnp.broadcast_to(jnp.array([0.0, 0.0, 0.0, 1.0], rot.dtype), (num, 1, 4))
    local = jnp.concatenate([local, bottom], axis=-2)  # (J, 4, 4)
    chain = [local[0]]
    for j in range(1, num):
        chain.append(chain[parents[j]] @ local[j])
    world = jnp.stack(chain)
    # Eq. 6: G'_j p = G_j (p - J_j), i.e. subtract R_j-rotated rest joint from the translation.
    shift = jnp.einsum("jab,jb->ja", world[:, :3, :3], joints)
    return world.at[:, :3, 3].add(-shift)


def lbs(
    v_shaped: jax.Array,
    pose: jax.Array,
    j_regressor: jax.Array,
    parents: tuple[int, ...],
    weights: jax.Array,
    posedirs: jax.Array | None,
) -> tuple[jax.Array, jax.Array]:
    """Eqs. 2-7 for one sample.

    v_shaped: (V, 3) the identity/expression-shaped template T_s (eq. 1)
    pose: (J, 3) axis-angle per joint
    j_regressor: (J, V); weights: (V, J); posedirs: (V, 3, 9(J-1)) or None (no correctives)
    Returns the posed vertices (V, 3) and the posed joint locations (J, 3).
    """
    joints = j_regressor @ v_shaped
    rot = rodrigues(pose)
    v_posed = v_shaped
    if posedirs is not None:
        feature = (rot[1:] - jnp.eye(3, dtype=rot.dtype)).reshape(-1)
        v_posed = v_posed + jnp.einsum("p,vcp->vc", feature, posedirs)
    transforms = rigid_transforms(rot, joints, parents)
    per_vertex = jnp.einsum("vj,jab->vab", weights, transforms)
    verts = jnp.einsum("vab,vb->va", per_vertex[:, :3, :3], v_posed) + per_vertex[:, :3, 3]
    posed_joints = jnp.einsum("jab,jb->ja", transforms[:, :3, :3], joints) + transforms[:, :3, 3]
    return verts, posed_joints
