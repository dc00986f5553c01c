"""Previews of a portrait avatar: the contact sheet and the turntable (issue 15, ``vasa3d fit``).

contact sheet: two rows (mouth closed, mouth open); columns: the photo (its crop over the
background outside the head-and-hair matte), the avatar in the photo's own view (row 1: the photo's
latent, what the photo anchors; row 2: the neutral face with the mouth open), then the avatar at
azimuth 0, -30, +30, -60, +60 degrees (``camera.CameraPath``, as ``vasa3d speak`` sees it), head
pose frontal, the neutral face (every facial channel 0: the photo's expression is a latent, not the
avatar's rest state, issue 21) with the mouth closed or open (AU25 = 1, AU26 = 0.8).

turntable: one full turn at ORBIT elevation in ``TURNTABLE_FRAMES`` frames while the neutral face's
mouth opens and closes (a 2 Hz speech-like cycle), H.264.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from vasa3d_jax import video
from vasa3d_jax.avatar.render import FrameRenderer, render_frames, render_motion
from vasa3d_jax.camera import ORBIT_ELEVATION_DEG, CameraPath
from vasa3d_jax.constants import FPS

SHEET_AZIMUTHS = (0.0, -30.0, 30.0, -60.0, 60.0)  # degrees (issue 15: front, +-30, +-60)
TURNTABLE_FRAMES = 100  # 4 s at 25 fps
MOUTH_OPEN = {"AU25": 1.0, "AU26": 0.8}


def expression(space, mouth_open: float) -> np.ndarray:
    """(D,): the neutral face, frontal pose, the mouth channels set by ``mouth_open`` in [0, 1]."""
    x = np.zeros(space.size, np.float32)
    for name, value in MOUTH_OPEN.items():
        if name in space.names:
            x[space.index(name)] = mouth_open * value
    return x


def photo_view(avatar, anchor, latent: np.ndarray | None = None) -> np.ndarray:
    """The avatar rendered with the photo's latent (or ``latent``) in the photo's crop camera."""
    x = anchor.latent if latent is None else latent
    cam = anchor.camera()
    cam = cam.replace(viewmat=cam.viewmat[None], K=cam.K[None])
    return render_frames(avatar, np.asarray(x, np.float32)[None], cam)[0]


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if image.shape[0] == size:
        return image
    pil = Image.fromarray(video.to_uint8(image)).resize((size, size), Image.BICUBIC)
    return np.asarray(pil, np.float32) / 255.0


def views(avatar, latent: np.ndarray, azimuths, size: int, elevation: float = 0.0) -> list[np.ndarray]:
    """The avatar with ``latent`` from each azimuth (``camera.CameraPath``), one (size, size, 3) image each."""
    renderer = FrameRenderer(avatar, size)
    path = CameraPath.static(0.0, elevation)
    renderer.prepare(np.asarray(latent, np.float32)[None], path, 1)
    out = []
    for az in azimuths:
        view = CameraPath.static(az, elevation).viewmat(0, 1)
        out.append(renderer(latent, view))
    return out


def contact_sheet(avatar, anchor, size: int = 192) -> np.ndarray:
    """The two-row sheet of the module docstring, (2 (size + pad), 7 (size + pad), 3)."""
    space = avatar.space
    tiles = []
    photo = _resize(anchor.target, size)
    for mouth in (0.0, 1.0):
        x = expression(space, mouth)
        own = anchor.latent.copy()
        if mouth:
            own[: space.dyn_size] = x[: space.dyn_size]
        tiles.append(photo)
        tiles.append(_resize(photo_view(avatar, anchor, own), size))
        tiles += views(avatar, x, SHEET_AZIMUTHS, size)
    return video.contact_sheet(np.stack(tiles), columns=len(SHEET_AZIMUTHS) + 2)


def turntable_motion(space, frames: int = TURNTABLE_FRAMES) -> np.ndarray:
    """(T, D): the neutral face, frontal pose, the mouth opening and closing at 2 Hz."""
    t = np.arange(frames) / FPS
    opening = 0.5 - 0.5 * np.cos(2 * math.pi * 2.0 * t)
    return np.stack([expression(space, float(o)) for o in opening])


def write_previews(avatar, anchor, folder, size: int = 192) -> dict:
    """``contact_sheet.png`` and ``turntable.mp4`` in ``folder``; returns their paths."""
    folder = pathlib.Path(folder)
    sheet = video.save_png(folder / "contact_sheet.png", contact_sheet(avatar, anchor, size))
    motion = turntable_motion(avatar.space)
    path = CameraPath("orbit", elevation=ORBIT_ELEVATION_DEG)
    mp4 = video.write_mp4(folder / "turntable.mp4", render_motion(avatar, motion, path, size),
                          fps=FPS)
    return {"contact_sheet": str(sheet), "turntable": str(mp4)}
