"""The obviously correct reference of this kernel folder: the dense renderer.

Every Gaussian is evaluated at every pixel and composited front to back with one ``lax.scan``,
straight from gsplat 1.5.3's formulas, with no tiles, capacities or chunks (``render/dense.py``,
where it lives beside the renderer it checks, documents its equations). The fast paths of this
folder, ``xla.py`` (the default) and ``pallas_fwd.py`` / ``pallas_bwd.py``, are tested against it
through ``render`` (``tests/render/test_render_dense.py``, ``tests/kernels``). Cost O(N H W): tests only.
"""

from vasa3d_jax.render.dense import dense_composite as composite_ref  # the compositing stage alone
from vasa3d_jax.render.dense import dense_render as render_ref  # projection + compositing

__all__ = ["composite_ref", "render_ref"]
