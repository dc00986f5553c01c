"""``head/geometry.py``'s shared mesh helpers against closed forms."""

import numpy as np

from vasa3d_jax.head import geometry


def test_vertex_normals_of_a_sphere_are_radial():
    """On a fine UV sphere the area-weighted normal of a vertex is its radial direction, to the
    mesh's angular resolution (pi / 24 between rings: cos error ~1e-2 at worst)."""
    centre = np.array([0.1, -0.2, 0.3])
    verts, faces = geometry.uv_sphere(centre, 2.0, 24, 48)
    n = geometry.vertex_normals(verts, faces)
    radial = (verts - centre) / np.linalg.norm(verts - centre, axis=1, keepdims=True)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-12)
    assert np.einsum("vc,vc->v", n, radial).min() > 0.99
    flipped = geometry.vertex_normals(verts, faces[:, ::-1])  # the winding sets the side
    np.testing.assert_allclose(flipped, -n, atol=1e-12)


def test_vertex_normals_weight_triangles_by_area():
    """A vertex shared by a large triangle in the xy plane and a small one in the xz plane leans to
    the large one's normal in proportion to the areas (eq. 3)."""
    verts = np.array([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 1.0]])
    faces = np.array([[0, 1, 2], [0, 3, 1]])  # normals +z (area 2) and +y (area 1)
    n = geometry.vertex_normals(verts, faces)[0]
    np.testing.assert_allclose(n, np.array([0.0, 1.0, 2.0]) / np.sqrt(5.0), atol=1e-12)


def test_smoothstep_is_the_clamped_cubic():
    x = np.array([-1.0, 0.0, 0.25, 0.5, 0.75, 1.0, 2.0])
    np.testing.assert_allclose(geometry.smoothstep(x), [0, 0, 0.15625, 0.5, 0.84375, 1, 1], atol=1e-15)
