"""The standard 3DGS PLY: written, read back with plyfile, and rendered by our own renderer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.camera import intrinsics, look_at
from vasa3d_jax.export import avatar_gaussians, export_ply, read_ply, write_ply
from vasa3d_jax.export.ply import SH_C0
from vasa3d_jax.render import Camera, render
from vasa3d_jax.render.types import Gaussians


def test_ply_has_the_3dgs_layout_and_reads_back(avatar, motion, frames, tmp_path):
    from plyfile import PlyData

    path = export_ply(avatar, tmp_path / "avatar.ply", x=motion[frames["open"]])
    ply = PlyData.read(str(path))
    names = [p.name for p in ply["vertex"].properties]
    # graphdeco-inria/gaussian-splatting scene/gaussian_model.py::construct_list_of_attributes, degree 3
    assert names == (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
                     + [f"f_rest_{i}" for i in range(45)] + ["opacity", "scale_0", "scale_1", "scale_2",
                                                              "rot_0", "rot_1", "rot_2", "rot_3"])
    header = path.read_bytes().split(b"end_header")[0].decode().splitlines()
    assert header[1] == "format binary_little_endian 1.0"
    assert [h for h in header if h.startswith("property")] == [f"property float {n}" for n in names]
    want = avatar_gaussians(avatar, motion[frames["open"]])
    assert len(ply["vertex"].data) == int(np.asarray(avatar.params["binding"].active).sum()) == want.means.shape[0]
    got = read_ply(path)
    np.testing.assert_allclose(got.means, want.means, atol=1e-7)
    np.testing.assert_allclose(got.scales, want.scales, rtol=1e-6)
    np.testing.assert_allclose(got.opacities, want.opacities, rtol=1e-6)
    q = want.quats / np.linalg.norm(want.quats, axis=-1, keepdims=True)
    np.testing.assert_allclose(got.quats, q, atol=1e-6)  # wxyz, rot_0 = w
    np.testing.assert_allclose(got.colors[:, 0] * SH_C0 + 0.5, want.colors, atol=1e-6)  # f_dc = (rgb - .5) / C0
    assert not got.colors[:, 1:].any()
    # The raw columns hold logs and logits, as the 3DGS loader expects.
    v = ply["vertex"].data
    np.testing.assert_allclose(np.exp(v["scale_1"]), want.scales[:, 1], rtol=1e-6)
    np.testing.assert_allclose(1 / (1 + np.exp(-v["opacity"])), want.opacities, rtol=1e-6)


@pytest.mark.slow  # two renderer compilations (RGB and SH colours): ~1-2.5 min on 2 shared cores
def test_ply_scene_renders_like_the_avatar(avatar, motion, frames, tmp_path):
    x = motion[frames["open"]]
    got = read_ply(export_ply(avatar, tmp_path / "a.ply", x=x))
    want = avatar_gaussians(avatar, x)
    size = 96
    cam = Camera(look_at((0.1, 0.0, 0.55), (0.0, -0.03, 0.0)), intrinsics(1.5 * size, 1.5 * size, size / 2, size / 2),
                 size, size)
    bg = jnp.ones(3)
    a = render(jax.tree.map(jnp.asarray, want), cam, bg, capacity=1 << 16)
    b = render(jax.tree.map(jnp.asarray, got), cam, bg, capacity=1 << 16)
    assert int(a.isect_overflow) == 0 and int(b.isect_overflow) == 0
    assert float(jnp.mean(a.alpha)) > 0.1  # the head is in view
    np.testing.assert_allclose(np.asarray(b.rgb), np.asarray(a.rgb), atol=2e-5)


def test_sh_gaussians_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)
    n = 50
    g = Gaussians(means=rng.normal(size=(n, 3)).astype(np.float32), quats=rng.normal(size=(n, 4)).astype(np.float32),
                  scales=rng.uniform(0.01, 0.1, (n, 3)).astype(np.float32),
                  opacities=rng.uniform(0.01, 0.99, n).astype(np.float32),
                  colors=rng.normal(size=(n, 4, 3)).astype(np.float32))  # SH degree 1
    got = read_ply(write_ply(g, tmp_path / "sh.ply", sh_degree=None))
    assert got.colors.shape == (n, 4, 3)
    # bitwise: a round trip (write -> read) is the contract
    np.testing.assert_array_equal(got.colors, g.colors)  # channel-major f_rest, no reordering loss
    got3 = read_ply(write_ply(g, tmp_path / "sh3.ply"))
    assert got3.colors.shape == (n, 16, 3)
    np.testing.assert_array_equal(got3.colors[:, :4], g.colors)  # bitwise: a round trip (write -> read) is the contract
    assert not got3.colors[:, 4:].any()
    with pytest.raises(ValueError, match="drop bands"):
        write_ply(g, tmp_path / "x.ply", sh_degree=0)
    with pytest.raises(ValueError, match="NaN"):
        write_ply(g.replace(means=np.full((n, 3), np.nan, np.float32)), tmp_path / "x.ply")
