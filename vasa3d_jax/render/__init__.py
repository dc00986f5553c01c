"""Differentiable 3D Gaussian splatting with gsplat 1.5.3 semantics (see ``api.py``)."""

from vasa3d_jax.render.api import render, required_capacity
from vasa3d_jax.render.dense import dense_render
from vasa3d_jax.render.types import Camera, Gaussians, RenderOutput

__all__ = ["Gaussians", "Camera", "RenderOutput", "render", "required_capacity",
           "dense_render"]
