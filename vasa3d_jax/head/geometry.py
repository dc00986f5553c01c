"""Mesh helpers used to build the template head (numpy, float64, run once at build time).

* ``edges`` / ``boundary_loops``: the undirected edges of a triangle mesh, and its boundary as
  ordered vertex loops (an edge is on the boundary when one triangle uses it).
* ``harmonic_extension``: given values on some vertices, fill the others by solving the discrete
  Laplace equation with the umbrella operator (Taubin 1995; Botsch et al., "Polygon Mesh
  Processing", 2010, §3.3):

      (1) Σ_{j∈N(i)} (x_j − x_i) = 0  for every free vertex i,   x_k = b_k for every fixed vertex k

  i.e. each free value is the mean of its neighbours: the smoothest interpolant in the Dirichlet
  sense, which is how the face's expression basis and the jaw weights spread over the head.
* ``affine_regressor``: min-norm affine weights w (Σ w = 1, Σ w_i v_i = p) so a joint p moves with
  an affine deformation of the vertices it is regressed from:

      (2) w = Aᵀ (A Aᵀ)⁻¹ [p; 1],   A = [v_1 … v_n; 1 … 1]   (4 × n)

* ``ring_strip`` / ``fan``: triangulate between two vertex rings and close a ring with a pole.
* ``uv_sphere``: a closed latitude/longitude sphere.
* ``vertex_normals``: area-weighted vertex normals, the sum of the unnormalised normals of the
  triangles around a vertex (each twice its triangle's area; Botsch et al. 2010, §3.2):

      (3) n_i = normalize( Σ_{f∋i} (v_f1 − v_f0) × (v_f2 − v_f0) )

* ``smoothstep``: the cubic Hermite ramp 0 → 1 with zero slope at both ends,

      (4) s(x) = 3 t² − 2 t³,   t = clip(x, 0, 1)

These are the one home of each (STYLE.md §11): the face encoder, the template head, the motion
corpus and the portrait model use them.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
import scipy.sparse.linalg


def edges(faces: np.ndarray) -> np.ndarray:
    """(F,3) -> (K,2) unique undirected edges, each as (min, max)."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return np.unique(np.sort(e, axis=1), axis=0)


def edge_face_counts(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique undirected edges (K,2) and how many triangles use each (K,)."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(e, axis=0, return_counts=True)
    return uniq, counts


def boundary_loops(faces: np.ndarray) -> list[list[int]]:
    """Ordered boundary loops, each following the triangles' orientation."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    present = {(int(a), int(b)) for a, b in directed}
    nxt = {a: b for a, b in present if (b, a) not in present}
    loops, seen = [], set()
    for start in sorted(nxt):
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        loops.append(loop)
    return loops


def harmonic_extension(faces: np.ndarray, num_vertices: int, fixed: np.ndarray,
                       values: np.ndarray) -> np.ndarray:
    """Eq. 1. fixed: (V,) bool; values: (V, C) with the fixed rows set. Returns (V, C).

    Every free vertex must be connected (through free vertices) to a fixed one.
    """
    e = edges(faces)
    n = num_vertices
    adj = scipy.sparse.coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])),
                                  shape=(n, n)).tocsr()
    lap = scipy.sparse.diags(np.asarray(adj.sum(axis=1)).ravel()) - adj
    free = ~fixed
    out = np.array(values, np.float64, copy=True)
    if not free.any():
        return out
    a = lap[free][:, free].tocsc()
    rhs = -lap[free][:, fixed] @ out[fixed]
    out[free] = scipy.sparse.linalg.splu(a).solve(np.asarray(rhs).reshape(int(free.sum()), -1))
    return out


def affine_regressor(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Eq. 2: (n,3) points, (3,) target -> (n,) weights summing to one that reproduce the target."""
    a = np.concatenate([points.T, np.ones((1, len(points)))])
    return a.T @ np.linalg.solve(a @ a.T, np.r_[target, 1.0])


def ring_strip(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Quads between two closed rings of equal length, as triangles (inner_i, outer_i, ...)."""
    n = len(inner)
    i = np.arange(n)
    j = (i + 1) % n
    return np.concatenate([np.stack([inner[i], outer[i], outer[j]], 1),
                           np.stack([inner[i], outer[j], inner[j]], 1)])


def fan(ring: np.ndarray, pole: int) -> np.ndarray:
    """Close a ring with a pole vertex: triangles (ring_i, pole, ring_{i+1})."""
    i = np.arange(len(ring))
    return np.stack([ring[i], np.full(len(ring), pole), ring[(i + 1) % len(ring)]], 1)


def uv_sphere(centre: np.ndarray, radius: float, n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed sphere: (2 + (n_lat-1) n_lon, 3) vertices and outward-facing triangles."""
    lat = np.pi * np.arange(1, n_lat) / n_lat
    lon = 2 * np.pi * np.arange(n_lon) / n_lon
    ring_pts = np.stack([np.sin(lat)[:, None] * np.cos(lon), np.cos(lat)[:, None] * np.ones_like(lon),
                         np.sin(lat)[:, None] * np.sin(lon)], -1).reshape(-1, 3)
    verts = np.concatenate([[[0.0, 1.0, 0.0]], ring_pts, [[0.0, -1.0, 0.0]]]) * radius + centre
    rings = 1 + np.arange((n_lat - 1) * n_lon).reshape(n_lat - 1, n_lon)
    bottom = len(verts) - 1
    tris = [fan(rings[0], 0)]
    tris += [ring_strip(rings[k], rings[k + 1]) for k in range(n_lat - 2)]
    tris.append(fan(rings[-1], bottom))
    return verts, orient_outward(verts, np.concatenate(tris), centre)


def orient_outward(verts: np.ndarray, faces: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Flip triangles whose normal points towards ``centre`` (valid for star-shaped pieces)."""
    tri = verts[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inward = np.einsum("fc,fc->f", n, tri.mean(1) - centre) < 0
    out = faces.copy()
    out[inward] = out[inward][:, ::-1]
    return out


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Eq. 3: (V, 3) unit area-weighted vertex normals of a triangle mesh (zero where no triangle
    touches a vertex); the winding of ``faces`` sets the side."""
    verts = np.asarray(verts)
    tri = verts[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    out = np.zeros_like(verts)
    for k in range(3):
        np.add.at(out, faces[:, k], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def smoothstep(x):
    """Eq. 4, elementwise (numpy)."""
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
