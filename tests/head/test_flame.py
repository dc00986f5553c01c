"""FLAME loading and skinning against smplx's independent ``lbs`` (torch, CPU).

The test writes FLAME-format files itself (random bases with FLAME's array shapes and kinematic
tree, fewer vertices for speed): as an ``.npz`` and as a Python-2-style pickle whose arrays are
chumpy-like objects and whose J_regressor is scipy sparse, loaded without chumpy installed.
"""

import pickle
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.sparse

from flame_file import NUM_F, NUM_V, flame_arrays
from vasa3d_jax.head import load_flame
from vasa3d_jax.geometry import rodrigues

torch = pytest.importorskip("torch")
smplx_lbs = pytest.importorskip("smplx.lbs")

@pytest.fixture(scope="module")
def arrays():
    return flame_arrays()


@pytest.fixture(scope="module")
def npz_path(tmp_path_factory, arrays):
    path = tmp_path_factory.mktemp("flame") / "flame_export.npz"
    np.savez(path, **arrays)
    return str(path)


class _FakeCh:
    """Mimics chumpy.ch.Ch: the value lives in ``x`` next to bookkeeping attributes."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars = set()
        self._itr = None


def _install_fake_chumpy():
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    reordering = types.ModuleType("chumpy.reordering")
    cls = type("Ch", (_FakeCh,), {"__module__": "chumpy.ch"})
    ch.Ch = cls
    select = type("Select", (_FakeCh,), {"__module__": "chumpy.reordering"})
    reordering.Select = select
    sys.modules.update({"chumpy": chumpy, "chumpy.ch": ch, "chumpy.reordering": reordering})
    return cls, select


@pytest.fixture(scope="module")
def pkl_path(tmp_path_factory, arrays):
    ch, select = _install_fake_chumpy()
    try:
        obj = {k: v for k, v in arrays.items()}
        for key in ("v_template", "shapedirs", "weights"):
            obj[key] = ch(arrays[key])
        obj["J"] = select(arrays["J_regressor"] @ arrays["v_template"])
        obj["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
        obj["bs_style"], obj["bs_type"] = "lbs", "lrotmin"
        data = pickle.dumps(obj, protocol=2)
    finally:
        for name in ("chumpy", "chumpy.ch", "chumpy.reordering"):
            sys.modules.pop(name, None)
    path = tmp_path_factory.mktemp("flame") / "generic_model.pkl"
    path.write_bytes(data)
    return str(path)


def _reference(arrays, shape, expr, pose, num_shape, num_expr):
    """smplx 0.1.28 lbs in float64 torch."""
    sd = arrays["shapedirs"]
    dirs = np.concatenate([sd[:, :, :num_shape], sd[:, :, 300:300 + num_expr]], axis=2)
    betas = np.concatenate([shape, expr], axis=-1)
    parents = torch.tensor([-1, 0, 1, 1, 1])
    verts, joints = smplx_lbs.lbs(
        torch.tensor(betas), torch.tensor(pose), torch.tensor(arrays["v_template"]),
        torch.tensor(dirs), torch.tensor(arrays["posedirs"].reshape(-1, 36).T),
        torch.tensor(arrays["J_regressor"]), parents, torch.tensor(arrays["weights"]))
    return verts.numpy(), joints.numpy()


@pytest.mark.parametrize("num_shape,num_expr", [(300, 100), (50, 20)])
def test_matches_smplx_lbs(arrays, npz_path, num_shape, num_expr):
    head = load_flame(npz_path, num_shape=num_shape, num_expression=num_expr)
    assert head.num_shape == num_shape and head.num_expression == num_expr
    rng = np.random.default_rng(1)
    shape = rng.normal(0, 1, (3, num_shape))
    expr = rng.normal(0, 1, (3, num_expr))
    pose = rng.normal(0, 0.4, (3, 15))
    pose[0, 3:] = 0.0  # also a pose with all non-root joints at rest (no correctives)
    ref_v, ref_j = _reference(arrays, shape, expr, pose, num_shape, num_expr)
    verts, joints = jax.jit(head.vertices_and_joints)(
        jnp.asarray(shape, jnp.float32), jnp.asarray(expr, jnp.float32), jnp.asarray(pose, jnp.float32))
    np.testing.assert_allclose(np.asarray(verts), ref_v, atol=1e-5)
    np.testing.assert_allclose(np.asarray(joints), ref_j, atol=1e-5)


def test_pickle_with_chumpy_objects_loads_without_chumpy(arrays, npz_path, pkl_path):
    assert "chumpy" not in sys.modules
    with pytest.raises(ImportError):
        __import__("chumpy")
    from_pkl = load_flame(pkl_path)
    from_npz = load_flame(npz_path)
    for field in ("v_template", "shapedirs", "exprdirs", "posedirs", "j_regressor", "lbs_weights", "faces"):
        # bitwise: the same arrays read from two file formats
        np.testing.assert_array_equal(np.asarray(getattr(from_pkl, field)), np.asarray(getattr(from_npz, field)))
    np.testing.assert_allclose(np.asarray(from_pkl.v_template), arrays["v_template"], atol=1e-7)


def test_batching_broadcasts(npz_path):
    head = load_flame(npz_path, num_shape=10, num_expression=5)
    rng = np.random.default_rng(2)
    shape = jnp.asarray(rng.normal(size=(10,)), jnp.float32)
    expr = jnp.asarray(rng.normal(size=(4, 1, 5)), jnp.float32)
    pose = jnp.asarray(rng.normal(0, 0.3, (2, 15)), jnp.float32)
    vertices = jax.jit(head.vertices)
    batched = vertices(shape, expr, pose)
    assert batched.shape == (4, 2, NUM_V, 3)
    single = vertices(shape, expr[3, 0], pose[1])
    np.testing.assert_allclose(np.asarray(batched[3, 1]), np.asarray(single), atol=1e-6)


def test_static_landmarks(tmp_path, arrays):
    rng = np.random.default_rng(3)
    bary = rng.random((51, 3))
    bary /= bary.sum(1, keepdims=True)
    idx = rng.integers(0, NUM_F, 51)
    path = tmp_path / "with_lmk.npz"
    np.savez(path, **arrays, lmk_faces_idx=idx, lmk_bary_coords=bary)
    head = load_flame(str(path), num_shape=0, num_expression=0)
    lmk = jax.jit(lambda s, e, p: head.static_landmarks(head.vertices(s, e, p)))(*head.neutral())
    tri = arrays["v_template"][arrays["f"][idx].astype(np.int64)]
    # Rest pose: LBS with identity rotations leaves the template unchanged.
    np.testing.assert_allclose(np.asarray(lmk), np.einsum("lkc,lk->lc", tri, bary), atol=1e-6)


def test_rodrigues_matches_matrix_exponential():
    rng = np.random.default_rng(4)
    aa = rng.normal(0, 1.0, (16, 3))
    aa[0] = 0.0
    aa[1] = 1e-5
    for a, r in zip(aa, np.asarray(jax.jit(rodrigues)(jnp.asarray(aa)))):
        k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
        np.testing.assert_allclose(r, scipy.linalg.expm(k), atol=1e-6)
    grad = jax.jit(jax.grad(lambda x: rodrigues(x).sum()))(jnp.zeros(3))
    assert np.all(np.isfinite(np.asarray(grad)))


def test_bad_files_give_clear_errors(tmp_path, arrays):
    with pytest.raises(FileNotFoundError, match="licence"):
        load_flame(tmp_path / "missing.pkl")
    partial = {k: v for k, v in arrays.items() if k != "posedirs"}
    np.savez(tmp_path / "partial.npz", **partial)
    with pytest.raises(ValueError, match="posedirs"):
        load_flame(tmp_path / "partial.npz")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"v_template": print}, protocol=2))
    with pytest.raises(ValueError, match="refusing"):
        load_flame(tmp_path / "evil.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="not a readable FLAME pickle"):
        load_flame(tmp_path / "junk.pkl")
    np.savez(tmp_path / "ok.npz", **arrays)
    with pytest.raises(ValueError, match="expression components"):
        load_flame(tmp_path / "ok.npz", num_expression=101)
    head = load_flame(tmp_path / "ok.npz", num_shape=3, num_expression=2)
    with pytest.raises(ValueError, match=r"expects \(\.\.\., 15\)"):
        head.vertices(jnp.zeros(3), jnp.zeros(2), jnp.zeros(12))


def test_region_labels_from_masks_and_weights(tmp_path, arrays, npz_path):
    faces = arrays["f"].astype(np.int64)
    masks = {"left_eyeball": faces[:5].ravel(), "right_eyeball": faces[5:10].ravel(),
             "face": faces[10:40].ravel(), "neck": faces[40:60].ravel(), "scalp": faces[60:].ravel()}
    with open(tmp_path / "FLAME_masks.pkl", "wb") as fh:
        pickle.dump(masks, fh, protocol=2)
    head = load_flame(npz_path, masks=tmp_path / "FLAME_masks.pkl")
    region = np.asarray(head.face_region)
    names = np.array(head.region_names)[region]
    assert np.all(names[:10] == "eyes")  # eyeball masks win over the others
    for name in ("face", "mouth", "eyes", "scalp", "neck"):
        assert name in head.region_names
    # Without masks: every triangle gets a valid label, eye-dominated triangles are "eyes".
    head = load_flame(npz_path)
    region = np.asarray(head.face_region)
    assert region.min() >= 0 and region.max() < len(head.region_names)
    dominant = arrays["weights"][faces].mean(1).argmax(1)
    assert np.all(region[dominant >= 3] == head.region_id("eyes"))
