"""Differentiable 3D Gaussian splatting with gsplat 1.5.3 semantics (see ``api.py``): ``render`` for
colours, ``render_features`` for any per-Gaussian features, and the one capacity policy
(``capacity.py``)."""

from vasa3d_jax.render.api import isect_need, render, render_features
from vasa3d_jax.render.capacity import OverflowReport, capacity_for, required_capacity, run_checked
from vasa3d_jax.render.dense import dense_render, dense_render_features
from vasa3d_jax.render.types import Camera, FeatureOutput, Gaussians, RenderOutput

__all__ = ["Gaussians", "Camera", "RenderOutput", "FeatureOutput", "render", "render_features", "isect_need",
           "required_capacity", "capacity_for", "OverflowReport", "run_checked",
           "dense_render", "dense_render_features"]
