"""The motion latent: one format for every part that produces or consumes motion.

A motion frame is ``x = concat(z_dyn, z_pose)`` (DESIGN.md, "The motion latent"), one row per video
frame at ``MotionSpace.fps`` frames per second:

* ``z_dyn``: facial dynamics. The built-in space is interpretable: the 20 facial action unit (FACS)
  intensities of py-feat's AU-to-mesh model (``au_to_mesh_pls_v4.npz``, ``au_columns``), in [0, 1],
  and the eye gaze (yaw, pitch) in radians relative to looking straight ahead. AU43 ("eyes closed")
  is the blink channel and AU26 ("jaw drop") drives the jaw rotation of the head rig.
* ``z_pose``: rigid head pose relative to the canonical frontal head: rotation as an axis-angle
  vector (radians) and translation (metres), both in the head model's frame (y up, z out of the face).

A learned code (VASA-1's) replaces the built-in space with ``MotionSpace.learned(dyn_size)``; every
network reads its sizes from the space, so nothing else changes.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from vasa3d_jax.constants import FPS

# py-feat 2.1.5, feat/resources/au_to_mesh_pls_v4.npz: au_columns (their order is the channel order).
ACTION_UNITS = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU11", "AU12",
    "AU14", "AU15", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU28", "AU43",
)


@dataclasses.dataclass(frozen=True)
class Channel:
    name: str  # e.g. "AU26", "gaze_yaw", "rot_x"
    low: float  # typical lower bound (not enforced; used for sampling, clipping in tools, previews)
    high: float  # typical upper bound
    unit: str = ""  # "intensity", "rad", "m", or "" for a learned code


@dataclasses.dataclass(frozen=True)
class MotionSpace:
    """Names, sizes and ranges of every channel of the motion latent ``x = [z_dyn, z_pose]``.

    Hashable (all fields are tuples), so it can be a static argument or a static dataclass field.
    """

    dyn: tuple[Channel, ...]  # z_dyn channels
    pose: tuple[Channel, ...]  # z_pose channels: rot_x, rot_y, rot_z (axis-angle, rad), tx, ty, tz (m)
    fps: float = float(FPS)  # motion frames per second
    mouth_weights: tuple[float, ...] | None = None  # linear readout of mouth opening from z_dyn

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def builtin(cls) -> "MotionSpace":
        """The interpretable default: 20 AU intensities + gaze, and a 6-DoF head pose."""
        dyn = tuple(Channel(au, 0.0, 1.0, "intensity") for au in ACTION_UNITS)
        dyn += (Channel("gaze_yaw", -0.5, 0.5, "rad"), Channel("gaze_pitch", -0.4, 0.4, "rad"))
        # Mouth opening is jaw drop (AU26) plus lips part (AU25); the jaw dominates the gap.
        mouth = [0.0] * len(dyn)
        mouth[ACTION_UNITS.index("AU26")] = 0.75
        mouth[ACTION_UNITS.index("AU25")] = 0.25
        return cls(dyn=dyn, pose=_pose_channels(), mouth_weights=tuple(mouth))

    @classmethod
    def learned(cls, dyn_size: int, mouth_weights: Sequence[float] | None = None) -> "MotionSpace":
        """A learned facial-dynamics code of ``dyn_size`` channels (e.g. VASA-1's) + the same pose."""
        if dyn_size <= 0:
            raise ValueError(f"{dyn_size=} must be positive")
        if mouth_weights is not None and len(mouth_weights) != dyn_size:
            raise ValueError(f"{len(mouth_weights)=} must equal {dyn_size=}")
        dyn = tuple(Channel(f"z{i}", -3.0, 3.0) for i in range(dyn_size))
        return cls(dyn=dyn, pose=_pose_channels(),
                   mouth_weights=None if mouth_weights is None else tuple(map(float, mouth_weights)))

    # ---- serialisation (the one JSON form, used by avatar and motion-model files) ----------------
    def to_json(self) -> str | dict:
        """``"builtin"`` for the built-in space, else ``{"dyn_size", "mouth_weights"}`` (a learned code)."""
        if self == MotionSpace.builtin():
            return "builtin"
        return {"dyn_size": self.dyn_size, "mouth_weights": self.mouth_weights}

    @classmethod
    def from_json(cls, value: str | dict) -> "MotionSpace":
        """Inverse of ``to_json``."""
        if value == "builtin":
            return cls.builtin()
        if not isinstance(value, dict) or "dyn_size" not in value:
            raise ValueError(f"not a MotionSpace description: {value!r}; expected 'builtin' or "
                             "{'dyn_size': ..., 'mouth_weights': ...} as MotionSpace.to_json writes")
        return cls.learned(value["dyn_size"], value.get("mouth_weights"))

    # ---- sizes and slices ---------------------------------------------------------------------
    @property
    def dyn_size(self) -> int:
        return len(self.dyn)

    @property
    def pose_size(self) -> int:
        return len(self.pose)

    @property
    def size(self) -> int:
        return self.dyn_size + self.pose_size

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.dyn + self.pose)

    def index(self, name: str) -> int:
        """Column of channel ``name`` in ``x``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no channel {name!r} in this MotionSpace; channels: {self.names}") from None

    def split(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        """``x (..., D) -> (z_dyn (..., D_dyn), z_pose (..., 6))``."""
        self.check(x)
        return x[..., : self.dyn_size], x[..., self.dyn_size:]

    def join(self, z_dyn: jnp.ndarray, z_pose: jnp.ndarray) -> jnp.ndarray:
        return jnp.concatenate([z_dyn, z_pose], axis=-1)

    def check(self, x) -> None:
        if x.shape[-1] != self.size:
            raise ValueError(
                f"motion latent has {x.shape[-1]} channels but this MotionSpace has {self.size} "
                f"({self.dyn_size} z_dyn + {self.pose_size} z_pose); was it made for another space?")

    # ---- ranges and readouts ------------------------------------------------------------------
    @property
    def low(self) -> np.ndarray:
        return np.array([c.low for c in self.dyn + self.pose], np.float32)

    @property
    def high(self) -> np.ndarray:
        return np.array([c.high for c in self.dyn + self.pose], np.float32)

    def neutral(self, *batch: int) -> jnp.ndarray:
        """The neutral frontal face: zeros (every AU off, gaze ahead, identity pose)."""
        return jnp.zeros((*batch, self.size), jnp.float32)

    def mouth_open(self, x: jnp.ndarray) -> jnp.ndarray:
        """How open the mouth is, per frame: ``(..., D) -> (...)`` (0 = closed, ~1 = wide open)."""
        if self.mouth_weights is None:
            raise ValueError("this MotionSpace has no mouth readout; pass mouth_weights to "
                             "MotionSpace.learned(...) (e.g. a linear probe fitted on labelled frames)")
        z_dyn, _ = self.split(x)
        return z_dyn @ jnp.asarray(self.mouth_weights, z_dyn.dtype)

    def clamp_intensities(self, x: np.ndarray) -> np.ndarray:
        """``x (..., D)`` with every "intensity" channel (the AUs) clipped to its range [0, 1]: an AU
        intensity is never negative (FACS) and the head rig was fitted on [0, 1] only; a generator can
        overshoot outside it (issue 21: -0.77 AU25 in digital silence). Other channels are kept."""
        x = np.asarray(x)
        self.check(x)
        intensity = np.array([c.unit == "intensity" for c in self.dyn + self.pose])
        if not intensity.any():
            return x
        return np.where(intensity, np.clip(x, self.low, self.high), x).astype(x.dtype)

    def pose_rotation(self, x: jnp.ndarray) -> jnp.ndarray:
        """Axis-angle head rotation ``(..., 3)`` in radians."""
        return self.split(x)[1][..., :3]

    def pose_translation(self, x: jnp.ndarray) -> jnp.ndarray:
        """Head translation ``(..., 3)`` in metres."""
        return self.split(x)[1][..., 3:6]


def _pose_channels() -> tuple[Channel, ...]:
    return (
        Channel("rot_x", -0.6, 0.6, "rad"), Channel("rot_y", -0.8, 0.8, "rad"),
        Channel("rot_z", -0.4, 0.4, "rad"),
        Channel("tx", -0.05, 0.05, "m"), Channel("ty", -0.05, 0.05, "m"),
        Channel("tz", -0.05, 0.05, "m"),
    )
