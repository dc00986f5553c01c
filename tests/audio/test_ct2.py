"""The CTranslate2 model.bin reader, against files written by ctranslate2's own serializer."""

import struct

import ml_dtypes
import numpy as np
import pytest

from vasa3d_jax.audio import read_ct2_model
from vasa3d_jax.audio.whisper import default_model_dir

model_spec = pytest.importorskip("ctranslate2.specs.model_spec")


class _Inner(model_spec.LayerSpec):
    def __init__(self):
        self.weight = None
        self.bias = None


class _TinySpec(model_spec.ModelSpec):
    def __init__(self):
        super().__init__()
        self.a = _Inner()
        self.b = _Inner()
        self.layer = [_Inner(), _Inner()]
        self.num_heads = np.dtype("int16").type(6)

    @property
    def name(self):
        return "TinySpec"

    @property
    def revision(self):
        return 7


def _write_tiny(path, quantization):
    rng = np.random.default_rng(0)
    spec = _TinySpec()
    shared = rng.standard_normal((5, 3)).astype(np.float32)
    spec.a.weight, spec.a.bias = shared, rng.standard_normal(5).astype(np.float32)
    spec.b.weight, spec.b.bias = shared.copy(), np.arange(5, dtype=np.float32)  # b.weight becomes an alias
    spec.layer[0].weight, spec.layer[0].bias = rng.standard_normal((2, 3, 4)).astype(np.float32), np.array([1, -2], np.int8)
    spec.layer[1].weight, spec.layer[1].bias = rng.standard_normal(4).astype(np.float32), np.array([1, 2, 3], np.int32)
    expected = {"a/weight": shared, "a/bias": spec.a.bias, "b/bias": spec.b.bias, "layer_0/weight": spec.layer[0].weight,
                "layer_0/bias": spec.layer[0].bias, "layer_1/weight": spec.layer[1].weight, "layer_1/bias": spec.layer[1].bias}
    spec.validate()
    spec.optimize(quantization)
    spec.save(str(path))
    return expected


@pytest.mark.parametrize("quantization,dtype", [("float32", np.float32), ("float16", np.float16),
                                                ("bfloat16", ml_dtypes.bfloat16)])
def test_reads_what_ctranslate2_writes(tmp_path, quantization, dtype):
    expected = _write_tiny(tmp_path, quantization)
    model = read_ct2_model(tmp_path)
    assert (model.binary_version, model.spec_name, model.spec_revision) == (6, "TinySpec", 7)
    assert model.aliases == {"b/weight": "a/weight"}
    assert model["num_heads"].dtype == np.int16 and model["num_heads"].shape == () and int(model["num_heads"]) == 6
    for name, value in expected.items():
        got = model[name]
        assert got.shape == value.shape, name
        if value.dtype.kind == "f":
            assert got.dtype == dtype, name
            # bitwise: a round trip (write -> read) is the contract
            np.testing.assert_array_equal(got, value.astype(dtype), err_msg=name)
        else:
            assert got.dtype == value.dtype, name
            # bitwise: a round trip (write -> read) is the contract
            np.testing.assert_array_equal(got, value, err_msg=name)
    assert model["b/weight"] is model["a/weight"]
    assert "b/weight" in model and "nope" not in model
    with pytest.raises(KeyError, match="neither a variable nor an alias"):
        model["nope"]


def test_corrupt_files(tmp_path):
    _write_tiny(tmp_path, "float16")
    raw = (tmp_path / "model.bin").read_bytes()
    cases = {"truncated": raw[:-7], "trailing": raw + b"\0\0", "version": struct.pack("<I", 2) + raw[4:]}
    for name, content in cases.items():
        bad = tmp_path / f"{name}.bin"
        bad.write_bytes(content)
        with pytest.raises(ValueError, match={"truncated": "truncated", "trailing": "unexpected bytes",
                                              "version": "binary version 2"}[name]):
            read_ct2_model(bad)
    with pytest.raises(FileNotFoundError):
        read_ct2_model(tmp_path / "missing")


def test_shipped_whisper_tiny_en():
    model = read_ct2_model(default_model_dir())
    assert (model.binary_version, model.spec_name, model.spec_revision) == (6, "WhisperSpec", 3)
    assert int(model["encoder/num_heads"]) == 6
    assert model["encoder/conv1/weight"].shape == (384, 80, 3) and model["encoder/conv1/weight"].dtype == np.float16
    assert model["decoder/projection/weight"] is model["decoder/embeddings/weight"]  # tied, stored once
    encoder = [n for n in model.variables if n.startswith("encoder/") and model[n].dtype == np.float16]
    # assets.md §5: the tiny.en encoder has 8.21 M parameters.
    assert round(sum(model[n].size for n in encoder) / 1e6, 2) == 8.21
