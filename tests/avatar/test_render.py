"""The template avatar through ``render``: from the front and the side its silhouette (alpha > 0.5)
has the extent of the projected head mesh, up to the Gaussians' own size."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.avatar import AvatarConfig, GaussianAvatar, region_colors
from vasa3d_jax.camera import intrinsics, look_at
from vasa3d_jax.render import Camera, render

W = H = 96
FOCAL = 180.0  # px: the 0.33 m tall head at 0.8 m spans ~75 px
DIST = 0.8  # m, camera distance from the look-at point
TARGET = np.array([0.0, -0.05, 0.0])  # between the crown and the neck base


@pytest.fixture(scope="module")
def rendered(template, space):
    av = GaussianAvatar(template, space, AvatarConfig(residual_width=16, residual_depth=1,
                                                      base_hidden=16))
    params = av.init(jax.random.key(0), colors=region_colors(template))
    views = jnp.stack([look_at(TARGET + [0, 0, DIST], TARGET), look_at(TARGET + [DIST, 0, 0], TARGET)])
    cam = Camera(viewmat=views, K=jnp.broadcast_to(intrinsics(FOCAL, FOCAL, W / 2, H / 2), (2, 3, 3)),
                 width=W, height=H)

    @jax.jit
    def go(params, x):
        (g_base, g_final), aux = av.apply(params, x)
        return render(g_final, cam, jnp.ones(3)), aux["vertices"], g_final

    out, verts, g = go(params, space.neutral())
    return out, np.asarray(views), np.asarray(verts), g, params


def test_silhouette_matches_projected_mesh_front_and_side(rendered):
    out, views, verts, g, params = rendered
    assert np.all(np.asarray(out.isect_overflow) == 0)
    live = np.asarray(params["binding"].active)
    widths = []
    for i, name in enumerate(("front", "side")):
        pc = verts @ views[i, :3, :3].T + views[i, :3, 3]
        uv = pc[:, :2] / pc[:, 2:] * FOCAL + np.array([W / 2, H / 2])
        mesh = np.array([uv[:, 0].min(), uv[:, 0].max(), uv[:, 1].min(), uv[:, 1].max()])
        ys, xs = np.nonzero(np.asarray(out.alpha[i]) > 0.5)
        sil = np.array([xs.min(), xs.max() + 1, ys.min(), ys.max() + 1], float)  # pixel edges
        # The largest Gaussian (std) in pixels at this distance bounds how far the fuzz reaches.
        sigma_px = float(np.asarray(g.scales)[live].max()) * FOCAL / DIST
        outward = np.array([mesh[0] - sil[0], sil[1] - mesh[1], mesh[2] - sil[2], sil[3] - mesh[3]])
        assert np.all(outward > -1.0), (name, mesh, sil)  # the whole head is covered
        assert np.all(outward < 1.5 * sigma_px), (name, mesh, sil, sigma_px)
        widths.append((sil[1] - sil[0], mesh[1] - mesh[0]))
        # The image is a head: the opaque region is a single blob around the image centre.
        assert np.asarray(out.alpha[i])[H // 2, W // 2] > 0.9
        assert np.asarray(out.alpha[i])[0, 0] < 0.01
    # The head is deeper (side) than broad (front), in the image as in the mesh.
    (sil_f, mesh_f), (sil_s, mesh_s) = widths
    assert sil_s > sil_f and abs(sil_s / sil_f - mesh_s / mesh_f) < 0.15
