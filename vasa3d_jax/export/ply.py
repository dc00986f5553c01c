"""Gaussians <-> the standard 3D Gaussian splatting PLY file (the layout of the original 3DGS code).

The layout is the one ``graphdeco-inria/gaussian-splatting`` writes in
``scene/gaussian_model.py::save_ply`` and gsplat, SuperSplat, spark and antimatter15/splat read:
one binary little-endian ``vertex`` element of float32 properties, per Gaussian

    x, y, z                       mean, metres (our world: the head frame, y up, z out of the face)
    nx, ny, nz                    normals, always 0 (unused by every loader)
    f_dc_0..2                     SH DC term per channel: (1) f_dc = (rgb - 0.5) / C0 for RGB colours
    f_rest_0..3(K-1)-1            higher SH bands, channel-major: (2) f_rest_{c (K-1) + j} = k_{j+1, c}
    opacity                       (3) logit(o) = log(o) - log(1 - o)
    scale_0..2                    (4) log(s), s the linear standard deviations
    rot_0..3                      (5) unit quaternion w, x, y, z

(2) is 3DGS' ``features_rest.transpose(1, 2).flatten(1)``: all of red's bands, then green's, then
blue's. Colours evaluate as max(SH(dir) + 0.5, 0) (gsplat, ``render/sh.py``), so an RGB Gaussian
written with (1) and zero higher bands renders with its own colour at any degree. The original 3DGS
loader requires exactly 3 (d + 1)^2 - 3 f_rest properties for its configured degree d (3 by
default), so RGB avatars are written at degree 3 with zero higher bands unless told otherwise.
Opacities are clipped to [OPACITY_EPS, 1 - OPACITY_EPS] before (3) so that the logit is finite.
"""

from __future__ import annotations

import os
import pathlib

import jax
import numpy as np

from vasa3d_jax.render.types import Gaussians

SH_C0 = 0.28209479177387814  # 3DGS utils/sh_utils.py C0 (= gaussians.SH_C0)
OPACITY_EPS = 1e-7  # keeps logit(o) finite (|logit| <= 16.1) for o = 0 or 1
DEFAULT_SH_DEGREE = 3  # the original 3DGS loader's default max_sh_degree


def _sh_coefficients(g: Gaussians, sh_degree: int) -> np.ndarray:
    """(N, (sh_degree + 1)^2, 3) SH coefficients of ``g`` at ``sh_degree`` (eq. 1; zero-padded)."""
    k = (sh_degree + 1) ** 2
    colors = np.asarray(g.colors, np.float32)
    if g.sh_degree is None:
        coeffs = np.zeros((colors.shape[0], k, 3), np.float32)
        coeffs[:, 0] = (colors - 0.5) / SH_C0
        return coeffs
    have = colors.shape[1]
    if have > k:
        raise ValueError(f"the Gaussians have SH degree {g.sh_degree}; writing them at sh_degree={sh_degree} "
                         f"would drop bands: pass sh_degree >= {g.sh_degree}")
    return np.concatenate([colors, np.zeros((colors.shape[0], k - have, 3), np.float32)], axis=1)


def write_ply(gaussians: Gaussians, path: str | os.PathLike, sh_degree: int | None = DEFAULT_SH_DEGREE
              ) -> pathlib.Path:
    """Writes unbatched ``gaussians`` (N Gaussians) to ``path`` in the 3DGS layout (eqs. 1-5).

    sh_degree: bands to write (0..3); None = the Gaussians' own (0 for RGB colours). Returns the path.
    """
    from plyfile import PlyData, PlyElement

    g = jax.tree.map(np.asarray, gaussians)
    if g.means.ndim != 2:
        raise ValueError(f"write_ply takes one set of Gaussians (N, 3) means; got {g.means.shape} "
                         "(index a batch first)")
    if sh_degree is None:
        sh_degree = g.sh_degree or 0
    if not 0 <= sh_degree <= 3:
        raise ValueError(f"{sh_degree=} must be in 0..3")
    if not all(np.isfinite(a).all() for a in (g.means, g.quats, g.scales, g.opacities, g.colors)):
        raise ValueError("the Gaussians hold NaN or infinite values; nothing was written")
    if (g.scales <= 0).any():
        raise ValueError("scales must be positive (linear standard deviations) to be written as logs")
    n = g.means.shape[0]
    coeffs = _sh_coefficients(g, sh_degree)
    rest = coeffs[:, 1:].transpose(0, 2, 1).reshape(n, -1)  # eq. 2, channel-major
    quats = g.quats / np.linalg.norm(g.quats, axis=-1, keepdims=True)
    op = np.clip(g.opacities, OPACITY_EPS, 1 - OPACITY_EPS).astype(np.float64)
    columns = {
        "x": g.means[:, 0], "y": g.means[:, 1], "z": g.means[:, 2],
        "nx": np.zeros(n), "ny": np.zeros(n), "nz": np.zeros(n),
        **{f"f_dc_{c}": coeffs[:, 0, c] for c in range(3)},
        **{f"f_rest_{i}": rest[:, i] for i in range(rest.shape[1])},
        "opacity": np.log(op) - np.log1p(-op),
        **{f"scale_{i}": np.log(g.scales[:, i]) for i in range(3)},
        **{f"rot_{i}": quats[:, i] for i in range(4)},
    }
    data = np.empty(n, dtype=[(name, "<f4") for name in columns])
    for name, col in columns.items():
        data[name] = col
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    PlyData([PlyElement.describe(data, "vertex")], byte_order="<").write(str(path))
    return path


def read_ply(path: str | os.PathLike) -> Gaussians:
    """Reads a 3DGS-layout PLY (eqs. 1-5 inverted) -> ``Gaussians`` with SH colours (N, K, 3),
    activated scales and opacities and unit wxyz quaternions (numpy arrays)."""
    from plyfile import PlyData

    ply = PlyData.read(str(path))
    if "vertex" not in ply:
        raise ValueError(f"{path} has no 'vertex' element; not a Gaussian splatting PLY")
    v = ply["vertex"].data
    names = set(v.dtype.names)
    need = {"x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3"}
    if not need <= names:
        raise ValueError(f"{path} lacks the 3DGS properties {sorted(need - names)}")
    n_rest = sum(1 for name in names if name.startswith("f_rest_"))
    k = n_rest // 3 + 1
    if n_rest % 3 or round(k ** 0.5) ** 2 != k or k > 16:
        raise ValueError(f"{path} has {n_rest} f_rest properties; 3DGS needs 3 (d + 1)^2 - 3 for d in 0..3")
    col = lambda name: np.asarray(v[name], np.float32)  # noqa: E731
    coeffs = np.zeros((len(v), k, 3), np.float32)
    coeffs[:, 0] = np.stack([col(f"f_dc_{c}") for c in range(3)], -1)
    if k > 1:
        rest = np.stack([col(f"f_rest_{i}") for i in range(n_rest)], -1).reshape(len(v), 3, k - 1)
        coeffs[:, 1:] = rest.transpose(0, 2, 1)
    quats = np.stack([col(f"rot_{i}") for i in range(4)], -1)
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    return Gaussians(means=np.stack([col("x"), col("y"), col("z")], -1), quats=quats,
                     scales=np.exp(np.stack([col(f"scale_{i}") for i in range(3)], -1)),
                     opacities=1.0 / (1.0 + np.exp(-col("opacity"))), colors=coeffs)
