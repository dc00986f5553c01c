"""vasa3d-jax: VASA-3D in JAX.

One portrait image + any speech audio -> an animatable 3D Gaussian head -> free-viewpoint
talking-head video. See README.md for the map of the parts and DESIGN.md for their contracts.
"""

__version__ = "0.1.0"

from vasa3d_jax import runtime as _runtime

# A process that compiles many programs (a service that fits avatars and talks all day) must not
# reach Linux's limit on memory mappings: XLA:CPU segfaults there (runtime.bound_memory_maps).
_runtime.bound_memory_maps()
