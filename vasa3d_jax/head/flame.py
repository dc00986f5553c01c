"""Load FLAME (Li et al., "Learning a model of facial shape and expression from 4D scans", SIGGRAPH
Asia 2017) from the file a user holds, as a ``HeadModel``.

Accepted files (FLAME is licence-gated; nothing is downloaded):

* ``generic_model.pkl`` (FLAME 2020) and ``flame2023.pkl`` (FLAME 2023): Python-2 pickles whose
  arrays are chumpy objects and whose ``J_regressor`` is a scipy sparse matrix. They are read with a
  restricted unpickler that admits only numpy arrays, sparse matrices and chumpy containers (turned
  into numpy arrays), so chumpy need not be installed and no other code can run while loading.
* ``.npz`` exports with FLAME's key names.

Keys used (FLAME 2020/2023 layout): ``v_template`` (V,3), ``shapedirs`` (V,3,300+E) with the 300
identity components first and then the expression components, ``posedirs`` (V,3,36),
``J_regressor`` (5,V), ``weights`` (V,5), ``kintree_table`` (2,5) with parents (-1,0,1,1,1),
``f`` (F,3); optional static landmark embedding ``lmk_faces_idx`` (L,) + ``lmk_bary_coords`` (L,3)
(also spelled ``lmk_face_idx`` / ``lmk_b_coords`` as in ``flame_static_embedding.pkl``).

The model is evaluated by ``HeadModel.vertices`` (``head/lbs.py``): blendshapes, Rodrigues, pose
correctives on vec(R_j − I) of the four non-root joints, kinematic chain, linear blend skinning.

Regions: with ``masks=`` (FLAME's ``FLAME_masks.pkl``: region name -> vertex indices) a triangle gets
the first matching region of ``_MASK_REGIONS``; without it, triangles are labelled from the skinning
weights and geometry (``_regions_from_weights``). FLAME has no mouth interior, so "mouth" is empty.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
from typing import Any

import jax.numpy as jnp
import numpy as np
import scipy.sparse

from vasa3d_jax.head.base import JOINTS, PARENTS, HeadModel

REGION_NAMES = ("face", "mouth", "eyes", "scalp", "neck")
FLAME_NUM_SHAPE = 300  # FLAME 2020/2023: shapedirs[..., :300] identity, the rest expression
FLAME_NUM_EXPRESSION = 100  # FLAME 2020/2023 expression components
# FLAME_masks.pkl region names -> our regions, first match wins (eyeballs before the face mask).
_MASK_REGIONS = (("left_eyeball", "eyes"), ("right_eyeball", "eyes"), ("face", "face"),
                 ("neck", "neck"), ("scalp", "scalp"))
_REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


# ---- restricted unpickling ----------------------------------------------------------------------
class _Captured:
    """Stand-in for a chumpy object or a scipy sparse matrix: keeps the pickled state only."""

    pickled_class = ""

    def __setstate__(self, state):
        if isinstance(state, tuple):  # (dict, slots) form
            merged = {}
            for part in state:
                merged.update(part or {})
            state = merged
        self.state = state


def _captured(module: str, name: str) -> type:
    return type(name, (_Captured,), {"pickled_class": f"{module}.{name}"})


# Plain data constructors that chumpy's bookkeeping state uses; none can run code.
_BUILTIN_DATA = {"object": object, "set": set, "frozenset": frozenset, "slice": slice}
_NUMPY_NAMES = {"_reconstruct", "scalar", "ndarray", "dtype", "_frombuffer"}


class _FlameUnpickler(pickle.Unpickler):
    """Admits numpy arrays, chumpy objects and scipy sparse matrices; nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "chumpy" or (module.startswith("scipy.sparse")
                                                 and name in ("csc_matrix", "csr_matrix", "coo_matrix")):
            return _captured(module, name)
        if module in ("copy_reg", "copyreg") and name == "_reconstructor":
            import copyreg
            return copyreg._reconstructor
        if module == "_codecs" and name == "encode":  # how protocol-2 pickles from Python 3 store bytes
            import codecs
            return codecs.encode
        if module in ("__builtin__", "builtins") and name in _BUILTIN_DATA:
            return _BUILTIN_DATA[name]
        if module.split(".")[0] == "numpy" and name in _NUMPY_NAMES:
            if module == "numpy":
                return getattr(np, name)
            for candidate in (module, module.replace("numpy.core", "numpy._core"),
                              module.replace("numpy._core", "numpy.core")):
                try:
                    return getattr(importlib.import_module(candidate), name)
                except (ImportError, AttributeError):
                    continue
        raise pickle.UnpicklingError(
            f"refusing to unpickle {module}.{name}: a FLAME file holds only numpy arrays, chumpy "
            "arrays and a scipy sparse J_regressor; is this really FLAME's generic_model.pkl?")


def _to_numpy(obj: Any, key: str) -> Any:
    if isinstance(obj, _Captured):
        state = obj.state
        if obj.pickled_class.startswith("scipy.sparse"):
            shape = state.get("_shape", state.get("shape"))
            cls = getattr(scipy.sparse, obj.pickled_class.rsplit(".", 1)[1])
            if obj.pickled_class.endswith("coo_matrix"):
                coords = state.get("coords", (state.get("row"), state.get("col")))
                return cls((state["data"], tuple(coords)), shape=shape).toarray()
            return cls((state["data"], state["indices"], state["indptr"]), shape=shape).toarray()
        if isinstance(state, dict) and "x" in state:  # chumpy.ch.Ch and subclasses keep their value in x
            return np.asarray(_to_numpy(state["x"], key))
        raise ValueError(f"FLAME key {key!r} is a {obj.pickled_class} without a stored value 'x'; "
                         "re-export the model with numpy arrays (np.savez with FLAME's key names)")
    if scipy.sparse.issparse(obj):
        return obj.toarray()
    return obj


def _read_pickle(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        raw = _FlameUnpickler(io.BytesIO(data), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ValueError(f"{path} is not a readable FLAME pickle: {err}") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path} holds a {type(raw).__name__}, not FLAME's dict of arrays")
    out = {}
    for key, value in raw.items():
        try:
            out[key] = _to_numpy(value, key)
        except ValueError:
            if key in _REQUIRED_KEYS or key.startswith("lmk"):
                raise
    return out


def _read_npz(path: str) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def read_flame_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Raw FLAME arrays from ``.pkl`` or ``.npz``, as numpy (dense J_regressor)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no FLAME file at {path!r}; FLAME is licence-gated: register at https://flame.is.tue.mpg.de "
            "and pass the path to generic_model.pkl / flame2023.pkl (or use template_head())")
    arrays = _read_npz(path) if path.endswith(".npz") else _read_pickle(path)
    missing = [k for k in _REQUIRED_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks FLAME keys {missing}; found {sorted(arrays)}")
    return arrays


def _f32(x) -> jnp.ndarray:
    return jnp.asarray(x, jnp.float32)


def _regions_from_weights(v: np.ndarray, faces: np.ndarray, weights: np.ndarray,
                          joints: np.ndarray) -> np.ndarray:
    """Triangle regions without FLAME_masks.pkl.

    eyes: eye joints dominate; neck: the root joint dominates (FLAME's neck skin); face: the rest in
    front of the jaw hinge (z > J_jaw.z) and below the forehead (y < J_jaw.y + 8 cm, about the
    hairline above an adult's temporomandibular joint); scalp: everything else.
    """
    tri_w = weights[faces].mean(axis=1)  # (F, 5)
    dominant = tri_w.argmax(axis=1)
    centroid = v[faces].mean(axis=1)
    jaw = joints[JOINTS.index("jaw")]
    region = np.full(len(faces), REGION_NAMES.index("scalp"), np.int32)
    front = (centroid[:, 2] > jaw[2]) & (centroid[:, 1] < jaw[1] + 0.08)
    region[front] = REGION_NAMES.index("face")
    region[dominant == JOINTS.index("global")] = REGION_NAMES.index("neck")
    region[np.isin(dominant, [JOINTS.index("eye_l"), JOINTS.index("eye_r")])] = REGION_NAMES.index("eyes")
    return region


def _regions_from_masks(path: str, faces: np.ndarray, num_vertices: int) -> np.ndarray:
    masks = _read_pickle(path) if path.endswith(".pkl") else _read_npz(path)
    region = np.full(len(faces), -1, np.int32)
    for mask_name, ours in _MASK_REGIONS:
        if mask_name not in masks:
            raise ValueError(f"{path} lacks FLAME mask {mask_name!r}; found {sorted(masks)}")
        inside = np.zeros(num_vertices, bool)
        inside[np.asarray(masks[mask_name], np.int64)] = True
        hit = inside[faces].all(axis=1) & (region < 0)
        region[hit] = REGION_NAMES.index(ours)
    region[region < 0] = REGION_NAMES.index("scalp")
    return region


def load_flame(path: str | os.PathLike, num_shape: int = FLAME_NUM_SHAPE,
               num_expression: int = FLAME_NUM_EXPRESSION, masks: str | os.PathLike | None = None,
               landmark_embedding: str | os.PathLike | None = None) -> HeadModel:
    """FLAME from ``generic_model.pkl`` / ``flame2023.pkl`` / ``.npz`` as a ``HeadModel``.

    num_shape, num_expression: how many leading components to keep (≤ 300 / ≤ what the file has).
    masks: optional ``FLAME_masks.pkl`` for exact region labels.
    landmark_embedding: optional ``.pkl``/``.npz`` with ``lmk_face_idx``/``lmk_b_coords`` (e.g.
      ``flame_static_embedding.pkl``); overrides an embedding stored in the model file.
    """
    arrays = read_flame_arrays(path)
    v = np.asarray(arrays["v_template"], np.float64)
    faces = np.asarray(arrays["f"], np.int64)
    dirs = np.asarray(arrays["shapedirs"], np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or dirs.shape[:2] != v.shape:
        raise ValueError(f"{path}: v_template {v.shape} and shapedirs {dirs.shape} must be (V,3), (V,3,K)")
    total_shape = min(FLAME_NUM_SHAPE, dirs.shape[2])
    total_expr = dirs.shape[2] - total_shape
    if not 0 <= num_shape <= total_shape or not 0 <= num_expression <= total_expr:
        raise ValueError(f"{path} has {total_shape} shape and {total_expr} expression components; "
                         f"asked for {num_shape=} and {num_expression=}")
    parents = tuple(int(p) for p in np.asarray(arrays["kintree_table"])[0])
    parents = (-1,) + parents[1:]  # FLAME stores the root's parent as 2**32 - 1
    if parents != PARENTS:
        raise ValueError(f"{path}: kintree parents {parents} are not FLAME's {PARENTS}")
    weights = np.asarray(arrays["weights"], np.float64)
    j_reg = np.asarray(arrays["J_regressor"], np.float64)
    posedirs = np.asarray(arrays["posedirs"], np.float64)
    nv, nj = len(v), len(PARENTS)
    for name, arr, want in (("weights", weights, (nv, nj)), ("J_regressor", j_reg, (nj, nv)),
                            ("posedirs", posedirs, (nv, 3, 9 * (nj - 1)))):
        if arr.shape != want:
            raise ValueError(f"{path}: {name} has shape {arr.shape}, FLAME's is {want}")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= nv:
        raise ValueError(f"{path}: f must be (F,3) vertex indices below {nv}")

    emb = arrays
    if landmark_embedding is not None:
        lp = os.fspath(landmark_embedding)
        emb = _read_pickle(lp) if lp.endswith(".pkl") else _read_npz(lp)
    lmk_idx = next((emb[k] for k in ("lmk_faces_idx", "lmk_face_idx") if k in emb), None)
    lmk_bary = next((emb[k] for k in ("lmk_bary_coords", "lmk_b_coords") if k in emb), None)

    joints = j_reg @ v
    region = (_regions_from_masks(os.fspath(masks), faces, nv) if masks is not None
              else _regions_from_weights(v, faces, weights, joints))
    return HeadModel(
        v_template=_f32(v), faces=jnp.asarray(faces, jnp.int32), face_region=jnp.asarray(region),
        shapedirs=_f32(dirs[:, :, :num_shape]),
        exprdirs=_f32(dirs[:, :, total_shape:total_shape + num_expression]),
        expression_pose=None, posedirs=_f32(posedirs), j_regressor=_f32(j_reg), lbs_weights=_f32(weights),
        landmark_vertices=None,
        lmk_faces_idx=None if lmk_idx is None else jnp.asarray(np.asarray(lmk_idx).astype(np.int64), jnp.int32),
        lmk_bary_coords=None if lmk_bary is None else _f32(lmk_bary),
        laplacian_edges=None, region_names=REGION_NAMES, kind="flame")
