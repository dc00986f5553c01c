"""The deformable Gaussian head: Gaussians bound to head-model triangles (GaussianAvatars), moved by
the motion latent through VASA-3D's base and residual deformations.

    from vasa3d_jax.avatar import GaussianAvatar, region_colors
    avatar = GaussianAvatar(head, MotionSpace.builtin())
    params = avatar.init(key, colors=region_colors(head))
    (g_base, g_final), aux = avatar.apply(params, x)   # render.Gaussians G', G''
"""

from vasa3d_jax.avatar.avatar import AvatarConfig, GaussianAvatar, region_colors, split_trainable
from vasa3d_jax.avatar.binding import TriangleFrames, local_to_world, triangle_frames
from vasa3d_jax.avatar.densify import (DensifyConfig, DensifyReport, DensifyStats, accumulate,
                                       densify_and_prune, densify_and_prune_grow,
                                       init_stats, reset_opacity)
from vasa3d_jax.avatar.gaussians import (Binding, BoundGaussians, bucket_capacity, grow,
                                         init_bound_gaussians, pad_rows, reset_rows)

__all__ = [
    "AvatarConfig", "GaussianAvatar", "region_colors",
    "split_trainable", "TriangleFrames", "local_to_world", "triangle_frames", "DensifyConfig",
    "DensifyReport", "DensifyStats", "accumulate", "densify_and_prune",
    "densify_and_prune_grow",
    "init_stats", "reset_opacity", "Binding", "BoundGaussians", "bucket_capacity", "grow",
    "init_bound_gaussians", "pad_rows", "reset_rows",
]
