"""Test scenes for the compositing kernels and an independent NumPy reference.

``numpy_composite_fwd`` / ``numpy_composite_bwd`` are written straight from gsplat 1.5.3's
per-pixel loops (reference/splatting.md §1.3 items 8 and 9), one pixel at a time, with no tiles:
every pixel walks the depth-sorted list of all Gaussians (ties by index). Tile binning does not
change the image as long as each tile list holds every Gaussian that reaches alpha >= 1/255 in the
tile (§1.4), so this loop is a reference for any binning. ``n_contrib`` is tile-relative in the
kernels' contract, so the loop returns the sorted-list ids instead and the tests compare those
through the tile lists.
"""

from __future__ import annotations

import math

import numpy as np

from vasa3d_jax.constants import ALPHA_THRESHOLD, MAX_ALPHA

T_THRESHOLD = 1e-4  # gsplat 1.5.3


def make_scene(seed: int, n: int, height: int, width: int, channels: int = 3, *,
               equal_depth_pairs: int = 0, extreme_opacities: bool = True):
    """Random projected Gaussians: dict of float32 arrays plus float64 depths.

    Gaussians 0 and 1 get opacity exactly 0 and 1 (alpha clamped to 0.999, gradients gated) when
    ``extreme_opacities``; ``equal_depth_pairs`` pairs of Gaussians share a depth.
    """
    rng = np.random.default_rng(seed)
    means2d = np.stack([rng.uniform(-4, width + 4, n), rng.uniform(-4, height + 4, n)], 1)
    # conic = inverse of a random SPD covariance with std 1..8 px
    ang = rng.uniform(0, np.pi, n)
    s1, s2 = rng.uniform(1.0, 8.0, n), rng.uniform(1.0, 8.0, n)
    cs, sn = np.cos(ang), np.sin(ang)
    cov_xx = cs**2 * s1**2 + sn**2 * s2**2
    cov_yy = sn**2 * s1**2 + cs**2 * s2**2
    cov_xy = cs * sn * (s1**2 - s2**2)
    det = cov_xx * cov_yy - cov_xy**2
    conics = np.stack([cov_yy / det, -cov_xy / det, cov_xx / det], 1)
    opacities = rng.uniform(0.05, 1.0, n)
    if extreme_opacities and n >= 4:  # near the image centre, so both surely cover pixels
        opacities[0], opacities[1] = 0.0, 1.0
        means2d[0] = (0.5 * width, 0.5 * height)
        # exactly on a pixel centre: o exp(-sigma) = 1 > 0.999 there, the clamp gates gradients
        means2d[1] = (width // 2 + 1.5, height // 2 + 0.5)
    colors = rng.uniform(0.0, 1.0, (n, channels))
    depths = rng.uniform(0.5, 5.0, n)
    for k in range(equal_depth_pairs):
        depths[2 * k + 3] = depths[2 * k + 2]
    background = rng.uniform(0.0, 1.0, channels)
    f32 = lambda x: np.asarray(x, np.float32)
    return dict(means2d=f32(means2d), conics=f32(conics), opacities=f32(opacities),
                colors=f32(colors), background=f32(background)), depths


def bin_scene(scene, depths, height: int, width: int, tile_size: int, *, everywhere=False,
              extra_padding: int = 5):
    """Tile lists sorted by (tile, depth, gid): (isect_gids int32, tile_offsets int32).

    Each Gaussian goes to every tile its 3.33-sigma per-axis box touches (gsplat's bound), or to
    every tile when ``everywhere``. ``extra_padding`` entries with an out-of-range id follow the
    lists (the contract says entries past ``tile_offsets[-1]`` are padding, never read).
    """
    th, tw = math.ceil(height / tile_size), math.ceil(width / tile_size)
    a, b, c = scene["conics"].astype(np.float64).T
    det = a * c - b * b
    rx = 3.33 * np.sqrt(c / det)  # per-axis std of the covariance = sqrt(cov_ii)
    ry = 3.33 * np.sqrt(a / det)
    pairs = []
    for g, (mx, my) in enumerate(scene["means2d"].astype(np.float64)):
        if everywhere:
            x0, x1, y0, y1 = 0, tw, 0, th
        else:
            x0 = int(np.clip(np.floor((mx - rx[g]) / tile_size), 0, tw))
            x1 = int(np.clip(np.ceil((mx + rx[g]) / tile_size), 0, tw))
            y0 = int(np.clip(np.floor((my - ry[g]) / tile_size), 0, th))
            y1 = int(np.clip(np.ceil((my + ry[g]) / tile_size), 0, th))
        for ty in range(y0, y1):
            for tx in range(x0, x1):
                pairs.append((ty * tw + tx, depths[g], g))
    pairs.sort()
    gids = np.array([p[2] for p in pairs] + [len(depths) + 3] * extra_padding, np.int32)
    tiles = np.array([p[0] for p in pairs], np.int64)
    offsets = np.searchsorted(tiles, np.arange(th * tw + 1)).astype(np.int32)
    return gids, offsets


def _alpha(scene, g, px, py):
    mx, my = scene["means2d"][g].astype(np.float64)
    a, b, c = scene["conics"][g].astype(np.float64)
    dx, dy = mx - px, my - py
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    vis = math.exp(-sigma)
    o = float(scene["opacities"][g])
    return sigma, vis, min(MAX_ALPHA, o * vis), (dx, dy)


def numpy_composite_fwd(scene, depths, height: int, width: int):
    """Per-pixel float64 loop: (out (H,W,D), T_final (H,W), last sorted position (H,W) or -1)."""
    order = np.lexsort((np.arange(len(depths)), depths))
    d = scene["colors"].shape[1]
    out = np.zeros((height, width, d))
    t_final = np.ones((height, width))
    last = -np.ones((height, width), np.int64)
    for y in range(height):
        for x in range(width):
            t, col = 1.0, np.zeros(d)
            for pos, g in enumerate(order):
                sigma, _, alpha, _ = _alpha(scene, g, x + 0.5, y + 0.5)
                if sigma < 0 or alpha < ALPHA_THRESHOLD:
                    continue
                t_next = t * (1 - alpha)
                if t_next <= T_THRESHOLD:
                    break
                col += scene["colors"][g] * alpha * t
                t = t_next
                last[y, x] = g
            out[y, x] = col + t * scene["background"]
            t_final[y, x] = t
    return out, t_final, last


def numpy_composite_bwd(scene, depths, height: int, width: int, v_out, v_alpha):
    """gsplat 1.5.3's back-to-front gradient loop per pixel, float64.

    Returns (v_means2d, v_conics, v_opacities, v_colors, v_background).
    """
    order = np.lexsort((np.arange(len(depths)), depths))
    n, d = scene["colors"].shape
    v_m, v_con = np.zeros((n, 2)), np.zeros((n, 3))
    v_o, v_c, v_bg = np.zeros(n), np.zeros((n, d)), np.zeros(d)
    bg = scene["background"].astype(np.float64)
    for y in range(height):
        for x in range(width):
            px, py = x + 0.5, y + 0.5
            # forward pass of this pixel: contributing Gaussians in order
            t, used = 1.0, []
            for g in order:
                sigma, _, alpha, _ = _alpha(scene, g, px, py)
                if sigma < 0 or alpha < ALPHA_THRESHOLD:
                    continue
                if t * (1 - alpha) <= T_THRESHOLD:
                    break
                t *= 1 - alpha
                used.append(g)
            t_final, vo, va = t, v_out[y, x].astype(np.float64), float(v_alpha[y, x])
            v_bg += t_final * vo
            buf = np.zeros(d)
            for g in reversed(used):
                sigma, vis, alpha, (dx, dy) = _alpha(scene, g, px, py)
                o = float(scene["opacities"][g])
                ra = 1.0 / (1.0 - alpha)
                t *= ra
                fac = alpha * t
                col = scene["colors"][g].astype(np.float64)
                v_c[g] += fac * vo
                v_a = np.sum((col * t - buf * ra) * vo) + t_final * ra * va
                v_a += -t_final * ra * np.sum(bg * vo)
                if o * vis <= MAX_ALPHA:
                    a, b, c = scene["conics"][g].astype(np.float64)
                    v_sigma = -o * vis * v_a
                    v_con[g] += [0.5 * v_sigma * dx * dx, v_sigma * dx * dy,
                                 0.5 * v_sigma * dy * dy]
                    v_m[g] += [v_sigma * (a * dx + b * dy), v_sigma * (b * dx + c * dy)]
                    v_o[g] += vis * v_a
                buf += col * fac
    return v_m, v_con, v_o, v_c, v_bg
