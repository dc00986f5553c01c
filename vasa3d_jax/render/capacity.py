"""The one intersection-capacity policy of the code base.

A render composites into a static number C of (Gaussian, binning tile) pairs
(``render(..., capacity=C)``, ``render_features`` alike): a static shape, so one compiled program
serves every frame of a run. Every render that is sized rather than given the default (avatars,
``avatar/render.py``; the fitting step, ``fit/trainer.py``; the portrait model's z-buffer and
synthesiser, ``portrait/texture.py`` and ``portrait/synth.py``; the synthetic portrait's truth,
``portrait/synthetic.py``) sizes C here:

    (1) need = max over the images (or probes of them) of isect_need(G, c)      (``api.isect_need``)
    (2) C = bucket(CAPACITY_MARGIN * need),   bucket(p) = CAPACITY_BUCKET * ceil(p / CAPACITY_BUCKET)
    (3) a render that reports isect_overflow > 0 is never used: C grows to bucket(CAPACITY_MARGIN *
        the need that render reported) and it runs again (``on_overflow="resize"``), or the call
        raises (``"raise"``); the overflow is reported (``OverflowReport``), never truncated away.

The probe set of (1) is what the caller knows: a clip's frames plus the neutral face and the mouth
wide open, a path's cameras, the very frames of a batch, the photo's view.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Literal, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.kernels.splat.config import SplatConfig
from vasa3d_jax.render.api import isect_need
from vasa3d_jax.render.types import Camera, Gaussians

CAPACITY_MARGIN = 1.25  # head motion within the probe set's range needs < 25% more tile pairs
CAPACITY_BUCKET = 8192  # capacities are rounded up to this step (one compiled program per step)
OnOverflow = Literal["resize", "raise"]
T = TypeVar("T")

_isect_need = jax.jit(isect_need, static_argnames=("antialiased", "backend", "config"))


def required_capacity(gaussians: Gaussians, camera: Camera, *, antialiased: bool = False, backend: str = "auto",
                      config: SplatConfig | None = None) -> int:
    """Eq. 1 without a margin: the most pairs any image of the (broadcast) batch needs.

    Runs on concrete arrays (not under jit; ``api.isect_need`` is the jittable count); the result
    is meant for ``capacity_for`` and a render with the same ``backend`` and ``config`` (they set
    the tile size).
    """
    return int(jnp.max(_isect_need(gaussians, camera, antialiased=antialiased, backend=backend, config=config)))


def capacity_for(need) -> int:
    """Eq. 2: the capacity for a measured need (pairs; an array of needs takes its largest)."""
    need = float(np.max(np.asarray(need)))
    return max(1, math.ceil(CAPACITY_MARGIN * need / CAPACITY_BUCKET)) * CAPACITY_BUCKET


@dataclasses.dataclass
class OverflowReport:
    """What a run of renders did about capacity: the capacity now and how often it grew (eq. 3)."""

    capacity: int = 0
    resizes: int = 0


def run_checked(run: Callable[[int], tuple[T, object, object]], report: OverflowReport, *,
                on_overflow: OnOverflow = "resize", what: str = "a render") -> T:
    """Eq. 3 around ``run(capacity) -> (result, overflow, need)`` (overflow and need: the pairs a
    render dropped and needed, any shape; their sums / maxima count). Runs at ``report.capacity``;
    on overflow grows it and runs again, or raises. Returns the result of a run that did not
    overflow, never a truncated one."""
    if on_overflow not in ("resize", "raise"):
        raise ValueError(f"on_overflow={on_overflow!r}; use 'resize' or 'raise'")
    if report.capacity <= 0:
        raise RuntimeError(f"the intersection capacity for {what} is not set: measure the need first "
                           "(capacity_for(required_capacity(...)))")
    for attempt in range(2):
        result, overflow, need = run(report.capacity)
        if not int(np.sum(np.asarray(overflow))):
            return result
        need = int(np.max(np.asarray(need)))
        if on_overflow == "raise":
            raise RuntimeError(f"{what} needs {need} (Gaussian, tile) pairs but the capacity is "
                               f"{report.capacity}; pass on_overflow='resize' or measure the need on these inputs")
        if attempt:
            raise RuntimeError(f"{what} still overflows at capacity {report.capacity} ({need} pairs)")
        report.capacity = capacity_for(need)
        report.resizes += 1
    raise AssertionError("unreachable")
