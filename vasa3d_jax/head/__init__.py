"""Parametric head models behind one interface: FLAME (user-held file) and the built-in template."""

from vasa3d_jax.head.base import JOINTS, PARENTS, POSE_SIZE, HeadModel
from vasa3d_jax.head.flame import load_flame
from vasa3d_jax.head.template import template_head

__all__ = ["HeadModel", "JOINTS", "PARENTS", "POSE_SIZE", "load_flame", "template_head"]
