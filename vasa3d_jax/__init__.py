"""vasa3d-jax: VASA-3D in JAX.

One portrait image + any speech audio -> an animatable 3D Gaussian head -> free-viewpoint
talking-head video. See README.md for the map of the parts and DESIGN.md for their contracts.
"""

__version__ = "0.1.0"
