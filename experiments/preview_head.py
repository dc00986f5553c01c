"""Preview of the untrained Gaussian head on the built-in template: a turntable and an expression sweep.

    python experiments/preview_head.py                      # writes to out/preview_head/
    python experiments/preview_head.py --out /tmp/preview --size 192 --per_triangle 1

Gaussians are bound to the template head's triangles (GaussianAvatars initialisation) and coloured
by region (face skin, mouth interior red, teeth white, eyes blue, scalp brown, neck tan), shaded by a
light fixed to the head so the relief reads. Output:

* ``turntable.mp4``: the neutral head seen from a camera circling it (360 degrees);
* ``expressions.mp4``: each of the 20 action units ramped 0 -> 1 -> 0 (AU26 opens the jaw, AU43
  closes the eyes), then gaze yaw and pitch, seen from a 3/4 view;
* ``contact_sheet.png``: 8 turntable views and every sweep channel at its peak, labelled.

What it should show: a head-shaped, smooth blob of Gaussians with blue eyes, a red mouth that opens
(with white teeth) at AU26, eyes that close at AU43, and a closed back of the head and neck in the
turntable. About 5 minutes on 2 otherwise idle CPU cores at the defaults (the XLA renderer), seconds on a GPU.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import av
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image, ImageDraw

from vasa3d_jax.avatar import AvatarConfig, GaussianAvatar, region_colors
from vasa3d_jax.avatar.io import Avatar
from vasa3d_jax.avatar.render import render_frames
from vasa3d_jax.camera import intrinsics, sphere_viewmat
from vasa3d_jax.head import template_head
from vasa3d_jax.motion_space import MotionSpace
from vasa3d_jax.render import Camera


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.out = "out/preview_head"  # output folder
    c.size = 192  # image width = height, pixels (even, for the H.264 encoder)
    c.focal = 390.0  # pixels; the 0.33 m head at 0.75 m fills ~90% of the frame height
    c.distance = 0.75  # camera distance from the look-at point, metres
    c.target = (0.0, -0.05, 0.0)  # look-at point (between crown and neck base), metres
    c.elevation_deg = 10.0  # turntable camera elevation
    c.turntable_frames = 24  # frames for 360 degrees
    c.ramp_frames = 5  # frames per expression channel, 0 -> peak -> 0 (odd: the middle one peaks)
    c.per_triangle = 2  # Gaussians per triangle (smaller Gaussians give a sharper preview)
    # Legibility of an unfitted head: GaussianAvatars' initial opacity 0.1 lets the eyes and mouth
    # show through the back of the head, and its round Gaussians blur the surface. The preview makes
    # them opaque discs on their triangles (fitting learns both from images).
    c.opacity = 0.9
    c.normal_scale = 0.2  # Gaussian extent along the triangle normal, relative to the in-plane one
    c.light = (0.4, 0.6, 1.0)  # direction towards a light fixed to the head: region colour x shading
    c.ambient = 0.45  # shading = ambient + (1 - ambient) * max(n . light, 0)
    c.seed = 0
    c.fps = 25
    c.chunk = 8  # frames rendered per call
    return c


def sweep_latents(space: MotionSpace, ramp_frames: int) -> tuple[np.ndarray, list[str]]:
    """(T, D) latents: each z_dyn channel ramped 0 -> peak -> 0 in turn; and one label per channel."""
    ramp = np.sin(np.linspace(0.0, np.pi, ramp_frames))
    rows, labels = [], []
    notes = {"AU26": "AU26 jaw drop", "AU43": "AU43 blink", "AU25": "AU25 lips part"}
    for ch in space.dyn:
        peak = ch.high if ch.high != 0 else ch.low
        x = np.zeros((ramp_frames, space.size), np.float32)
        x[:, space.index(ch.name)] = peak * ramp
        rows.append(x)
        labels.append(notes.get(ch.name, ch.name))
    return np.concatenate(rows), labels


def shaded_region_colors(head, light, ambient: float) -> np.ndarray:
    """(F, 3) region colours times a Lambert term of the neutral triangle normals, so that the
    relief (nose, lips, lids) reads in a flat-coloured preview."""
    n = np.asarray(head.face_normals(head.v_template))
    l = np.asarray(light, np.float64) / np.linalg.norm(light)
    shade = ambient + (1.0 - ambient) * np.clip(n @ l, 0.0, None)
    return (region_colors(head) * shade[:, None]).astype(np.float32)


def to_uint8(rgb) -> np.ndarray:
    return (np.clip(np.asarray(rgb), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def label(img: np.ndarray, text: str) -> np.ndarray:
    im = Image.fromarray(img)
    ImageDraw.Draw(im).text((4, 4), text, fill=(0, 0, 0))
    return np.asarray(im)


def write_mp4(path: pathlib.Path, frames: list[np.ndarray], fps: int) -> None:
    """H.264 MP4 through PyAV (in-process; frame sizes must be even for yuv420p)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())


def main(cfg: ml_collections.ConfigDict) -> pathlib.Path:
    if cfg.ramp_frames < 3 or cfg.ramp_frames % 2 == 0:
        raise ValueError(f"ramp_frames={cfg.ramp_frames} must be odd and >= 3 so one frame peaks")
    if cfg.size % 2:
        raise ValueError(f"size={cfg.size} must be even (H.264 with yuv420p)")
    out = pathlib.Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    head = template_head()
    space = MotionSpace.builtin()
    avatar = GaussianAvatar(head, space, AvatarConfig(per_triangle=cfg.per_triangle))
    params = avatar.init(jax.random.key(cfg.seed),
                         colors=shaded_region_colors(head, cfg.light, cfg.ambient))
    g = params["gaussians"]
    params["gaussians"] = g.replace(
        opacity_logits=jnp.full_like(g.opacity_logits, float(np.log(cfg.opacity / (1 - cfg.opacity)))),
        log_scales=g.log_scales.at[:, 1].add(float(np.log(cfg.normal_scale))))  # local y = normal
    k = np.asarray(intrinsics(cfg.focal, cfg.focal, cfg.size / 2, cfg.size / 2))
    white = (1.0, 1.0, 1.0)
    preview = Avatar(avatar, params)

    def frames(xs, viewmats):
        """Frame i of ``xs (n, D)`` from camera i of ``viewmats (n, 4, 4)`` (never truncated)."""
        cam = Camera(viewmat=jnp.asarray(viewmats, jnp.float32),
                     K=jnp.asarray(np.broadcast_to(k, (len(viewmats), 3, 3))), width=cfg.size, height=cfg.size)
        return render_frames(preview, xs, cam, white, chunk=cfg.chunk)

    t0 = time.time()
    azimuths = np.linspace(0.0, 360.0, cfg.turntable_frames, endpoint=False)
    views = np.stack([sphere_viewmat(a, cfg.elevation_deg, cfg.distance, tuple(cfg.target)) for a in azimuths])
    turn = [to_uint8(r) for r in frames(np.repeat(np.asarray(space.neutral(1)), len(views), 0), views)]
    write_mp4(out / "turntable.mp4", turn, cfg.fps)
    print(f"turntable: {len(turn)} frames in {time.time() - t0:.0f} s")

    t0 = time.time()
    xs, labels = sweep_latents(space, cfg.ramp_frames)
    three_quarter = sphere_viewmat(25.0, cfg.elevation_deg, cfg.distance, tuple(cfg.target))
    sweep = [to_uint8(r) for r in frames(xs, np.repeat(three_quarter[None], len(xs), 0))]
    peak = cfg.ramp_frames // 2  # sin(pi / 2) = 1 for an odd ramp
    write_mp4(out / "expressions.mp4",
              [label(f, labels[i // cfg.ramp_frames]) for i, f in enumerate(sweep)], cfg.fps)
    print(f"expression sweep: {len(sweep)} frames in {time.time() - t0:.0f} s")

    tiles = [label(turn[i], f"az {azimuths[i]:.0f}")
             for i in range(0, len(turn), max(1, len(turn) // 8))][:8]
    tiles += [label(sweep[j * cfg.ramp_frames + peak], labels[j]) for j in range(len(labels))]
    cols = 8
    rows = -(-len(tiles) // cols)
    blank = np.full_like(tiles[0], 255)
    tiles += [blank] * (rows * cols - len(tiles))
    sheet = np.concatenate([np.concatenate(tiles[r * cols:(r + 1) * cols], 1) for r in range(rows)])
    Image.fromarray(sheet).save(out / "contact_sheet.png")
    print(f"wrote {out.resolve()}/{{turntable.mp4, expressions.mp4, contact_sheet.png}}")
    return out


if __name__ == "__main__":
    cfg = get_config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for key, value in cfg.items():
        if isinstance(value, (int, float, str)):
            parser.add_argument(f"--{key}", type=type(value), default=value)
    args = parser.parse_args()
    cfg.update({k: v for k, v in vars(args).items()})
    main(cfg)
