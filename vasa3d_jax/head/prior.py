"""The motion latent's linear map to head-model parameters: the priors P_e, P_p of the base
deformation (avatar/avatar.py eqs. (1)-(2)), shared by the Gaussian head, the motion encoder
(face/encode.py) and the portrait model, so each sees the same head for the same latent.

    (1)  (psi, theta_jaw, theta_eye)   = P_e z_dyn         P_e: (D_dyn, E + 9)
    (2)  (theta_neck, theta_global, t) = P_p z_pose        P_p: (6, 9)

What the motion space already says (a choice of this project; the paper trains M_e, M_p freely):

* pose (any space): theta_global = the axis-angle rotation of z_pose, t = its translation,
  theta_neck = 0 -- z_pose is defined as the rigid head pose (DESIGN.md, "The motion latent");
* expression: a z_dyn channel whose name is one of the head model's expression names (the 20
  action units of the built-in space and template head) drives that expression coefficient with
  weight 1 (the template head rigs AU26 to its jaw itself); for a head without named expressions
  (FLAME), AU26 (jaw drop) opens the jaw, theta_jaw = (AU26 * ``jaw_open_per_au26``, 0, 0)
  (rotation about +x lowers the chin, FLAME's convention); gaze (yaw, pitch) turns both eyes,
  theta_eye = (-pitch, yaw, 0) (yaw > 0 turns the gaze towards +x, pitch > 0 looks up, +y), the
  small-angle composition of the two rotations;
* a learned code or FLAME's expression space has no named correspondence: its prior is 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.head.base import HeadModel
from vasa3d_jax.motion_space import ACTION_UNITS, MotionSpace

# Jaw pitch (rad) at AU26 = 1. About 17 degrees: a wide but not maximal opening (adult maximal
# opening is ~25-30 degrees of condylar rotation); a project choice, trained further by M_e.
JAW_OPEN_PER_AU26 = 0.3


def expression_names(head: HeadModel) -> tuple[str, ...]:
    """Names of the head model's expression coefficients where they have any: the template head's
    20 action units (``motion_space.ACTION_UNITS`` order, head/template.py); () for FLAME's PCA."""
    names = getattr(head, "expression_names", None)
    if names is not None:
        return tuple(names)
    if getattr(head, "kind", None) == "template" and head.num_expression == len(ACTION_UNITS):
        return ACTION_UNITS
    return ()


def base_priors(space: MotionSpace, head: HeadModel, jaw_open_per_au26: float = JAW_OPEN_PER_AU26
                ) -> tuple[jax.Array, jax.Array]:
    """The linear priors P_e (D_dyn, E + 9) and P_p (6, 9) of eqs. (1)-(2) (module docstring)."""
    num_exp = int(head.num_expression)
    p_exp = np.zeros((space.dyn_size, num_exp + 9), np.float32)
    dyn_names = [c.name for c in space.dyn]
    head_names = expression_names(head)
    for i, name in enumerate(dyn_names):
        if name in head_names:
            p_exp[i, head_names.index(name)] = 1.0
    if "AU26" in dyn_names and "AU26" not in head_names:
        p_exp[dyn_names.index("AU26"), num_exp + 0] = jaw_open_per_au26
    if "gaze_yaw" in dyn_names and "gaze_pitch" in dyn_names:
        yaw, pitch = dyn_names.index("gaze_yaw"), dyn_names.index("gaze_pitch")
        for eye in (0, 1):
            p_exp[pitch, num_exp + 3 + 3 * eye + 0] = -1.0
            p_exp[yaw, num_exp + 3 + 3 * eye + 1] = 1.0
    pose_names = [c.name for c in space.pose]
    p_pose = np.zeros((space.pose_size, 9), np.float32)
    for j, name in enumerate(("rot_x", "rot_y", "rot_z", "tx", "ty", "tz")):
        if name in pose_names:
            p_pose[pose_names.index(name), 3 + j] = 1.0
    return jnp.asarray(p_exp), jnp.asarray(p_pose)
