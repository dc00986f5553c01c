"""A small reader for MediaPipe's face ``.tflite`` flatbuffers: the op list and the weights, as numpy.

The ``tflite`` package (generated from TensorFlow's ``schema.fbs``) parses the flatbuffer; this
module turns subgraph 0 into a static, hashable ``Graph`` (the ops in execution order, with their
options) plus a dict of float32 weights. fp16 constants feed ``DEQUANTIZE`` ops in MediaPipe's files;
they are exactly representable in float32, so they are upcast once here and the ``DEQUANTIZE`` op
disappears (the weight is stored under its float32 tensor's name). Layouts are converted to the
ones ``nets.py`` uses (``shared/reference/mediapipe-face.md`` §1.4):

  CONV_2D kernel            OHWI [out, kh, kw, in]  -> HWIO (transpose 1, 2, 3, 0)
  DEPTHWISE_CONV_2D kernel  1HWC                    -> HWC (depth multiplier 1 in all three models)
  PRELU alpha               [1, 1, C]               -> [C]

The full-range detector (``face_detection_full_range_sparse.tflite``) adds what the other three do
not use: sparse weights (``DENSIFY``: each tensor's last dimension stored in CSR form, schema.fbs
``SparsityParameters``; densified here once, so the op disappears like ``DEQUANTIZE``), activations
fused into ``CONV_2D`` / ``ADD`` (``fused_activation_function`` RELU), explicit spatial ``PAD`` before
VALID convolutions, ``RESIZE_BILINEAR`` (half-pixel centres) and ``DEPTH_TO_SPACE``.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import numpy as np

__all__ = ["Op", "Graph", "read_tflite"]

# schema.fbs TensorType -> numpy
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}
# schema.fbs Padding
_PADDING = {0: "SAME", 1: "VALID"}
# schema.fbs ActivationFunctionType
_ACTIVATION = {0: "", 1: "RELU"}
SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "PRELU", "RELU", "ADD", "PAD", "MAX_POOL_2D",
             "RESHAPE", "CONCATENATION", "RESIZE_BILINEAR", "DEPTH_TO_SPACE")


@dataclasses.dataclass(frozen=True)
class Op:
    kind: str                      # TFLite builtin name, one of SUPPORTED
    inputs: tuple[str, ...]        # activation inputs (weights are looked up by `weights`)
    output: str                    # name of the produced tensor
    weights: tuple[str, ...] = ()  # names of the constant operands (kernel, bias / alpha / paddings)
    stride: tuple[int, int] = (1, 1)
    window: tuple[int, int] = (1, 1)
    padding: str = "VALID"         # 'SAME' (TensorFlow rule, as lax) or 'VALID'
    axis: int = 0                  # CONCATENATION axis
    shape: tuple[int, ...] = ()    # RESHAPE / RESIZE_BILINEAR output shape (batch excluded)
    pads: tuple[tuple[int, int], ...] = ()  # PAD (low, high) of H, W, C
    features: int = 0              # CONV_2D output channels
    activation: str = ""           # fused activation of CONV_2D / DEPTHWISE_CONV_2D / ADD: "" or "RELU"
    block: int = 0                 # DEPTH_TO_SPACE block size


@dataclasses.dataclass(frozen=True)
class Graph:
    name: str
    input: str
    input_shape: tuple[int, ...]   # (H, W, C), batch excluded
    outputs: tuple[str, ...]
    ops: tuple[Op, ...]


def _index_vector(table, kind: int) -> np.ndarray:
    """A schema.fbs ``SparseIndexVector`` union member (1 int32, 2 uint16, 3 uint8) as numpy."""
    import tflite

    vec = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]()
    vec.Init(table.Bytes, table.Pos)
    return vec.ValuesAsNumpy().astype(np.int64)


def densify(values: np.ndarray, shape, sparsity) -> np.ndarray:
    """A sparse constant -> its dense array (TFLite's ``DENSIFY``, schema.fbs ``SparsityParameters``).

    The stored ``values`` are the non-zeros in traversal order. Dimension d is DENSE (every index
    0..dense_size-1) or SPARSE_CSR (for each prefix k, indices[segments[k]:segments[k+1]]); walking
    the dimensions in order expands the prefixes to the full index of every value. Only identity
    traversal order and no block map occur in MediaPipe's files; anything else is refused.
    """
    order = sparsity.TraversalOrderAsNumpy()
    if list(order) != list(range(len(shape))) or sparsity.BlockMapLength():
        raise ValueError("only sparse tensors in identity traversal order without blocks are supported")
    prefixes = np.zeros((1, 0), np.int64)
    for d in range(sparsity.DimMetadataLength()):
        meta = sparsity.DimMetadata(d)
        if meta.Format() == 0:  # DENSE
            n = meta.DenseSize()
            prefixes = np.concatenate([np.repeat(prefixes, n, 0),
                                       np.tile(np.arange(n), len(prefixes))[:, None]], 1)
        else:  # SPARSE_CSR
            seg = _index_vector(meta.ArraySegments(), meta.ArraySegmentsType())
            idx = _index_vector(meta.ArrayIndices(), meta.ArrayIndicesType())
            prefixes = np.concatenate([np.repeat(prefixes, np.diff(seg), 0), idx[:, None]], 1)
    if len(prefixes) != values.size:
        raise ValueError(f"sparse tensor: {values.size} values for {len(prefixes)} indices")
    out = np.zeros(tuple(int(s) for s in shape), values.dtype)
    out[tuple(prefixes.T)] = values
    return out


def _builtin_names():
    import tflite
    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}


def _activation(options, path) -> str:
    code = options.FusedActivationFunction()
    if code not in _ACTIVATION:
        raise ValueError(f"{path.name}: fused activation {code} is not supported")
    return _ACTIVATION[code]


@functools.cache
def read_tflite(path) -> tuple[Graph, dict[str, np.ndarray]]:
    """Parse a ``.tflite`` file -> (Graph, weights). Raises ValueError on an op outside SUPPORTED."""
    import tflite

    path = pathlib.Path(path)
    buf = path.read_bytes()
    model = tflite.Model.GetRootAsModel(buf, 0)
    g = model.Subgraphs(0)
    names = _builtin_names()

    def tname(i):
        return g.Tensors(i).Name().decode()

    def const(i):
        t = g.Tensors(i)
        data = model.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data.size == 0:
            return None
        values = np.frombuffer(data.tobytes(), _DTYPES[t.Type()])
        if t.Sparsity() is not None:
            return densify(values, t.ShapeAsNumpy(), t.Sparsity())
        return values.reshape(t.ShapeAsNumpy())

    weights: dict[str, np.ndarray] = {}
    consts: dict[str, np.ndarray] = {}
    for i in range(g.TensorsLength()):
        c = const(i)
        if c is not None:
            consts[tname(i)] = c
    ops = []
    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins = [tname(i) for i in op.InputsAsNumpy() if i >= 0]
        out = tname(op.OutputsAsNumpy()[0])
        if kind == "DEQUANTIZE":  # fp16 constant -> float32 constant
            consts[out] = consts[ins[0]].astype(np.float32)
            continue
        if kind == "DENSIFY":  # already densified when read (``densify``)
            consts[out] = consts[ins[0]]
            continue
        if kind not in SUPPORTED:
            raise ValueError(f"{path.name}: op {kind} is not supported by vasa3d_jax.face.tflite_graph")
        acts = tuple(n for n in ins if n not in consts)
        wts = tuple(n for n in ins if n in consts)
        opts = op.BuiltinOptions()
        kw = {}
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            o = (tflite.Conv2DOptions() if kind == "CONV_2D" else tflite.DepthwiseConv2DOptions())
            o.Init(opts.Bytes, opts.Pos)
            assert o.DilationHFactor() == 1 == o.DilationWFactor()
            kw = dict(stride=(o.StrideH(), o.StrideW()), padding=_PADDING[o.Padding()],
                      activation=_activation(o, path))
            kernel, bias = consts[wts[0]], consts[wts[1]]
            if kind == "CONV_2D":
                weights[wts[0]] = np.ascontiguousarray(kernel.transpose(1, 2, 3, 0), np.float32)
                kw["window"] = kernel.shape[1:3]
                kw["features"] = int(kernel.shape[0])
            else:
                assert kernel.shape[0] == 1 and o.DepthMultiplier() == 1, "depth multiplier 1 expected"
                weights[wts[0]] = np.ascontiguousarray(kernel[0], np.float32)
                kw["window"] = kernel.shape[1:3]
            weights[wts[1]] = bias.astype(np.float32)
        elif kind == "PRELU":
            weights[wts[0]] = consts[wts[0]].reshape(-1).astype(np.float32)
        elif kind == "MAX_POOL_2D":
            o = tflite.Pool2DOptions()
            o.Init(opts.Bytes, opts.Pos)
            assert o.FusedActivationFunction() == 0
            kw = dict(stride=(o.StrideH(), o.StrideW()), window=(o.FilterHeight(), o.FilterWidth()),
                      padding=_PADDING[o.Padding()])
        elif kind == "PAD":
            pads = consts[wts[0]]
            assert np.all(pads[0] == 0), "batch padding is not expected"
            kw = dict(pads=tuple((int(lo), int(hi)) for lo, hi in pads[1:]))
            wts = ()
        elif kind == "ADD":
            o = tflite.AddOptions()
            o.Init(opts.Bytes, opts.Pos)
            kw = dict(activation=_activation(o, path))
        elif kind == "RESIZE_BILINEAR":
            o = tflite.ResizeBilinearOptions()
            o.Init(opts.Bytes, opts.Pos)
            if o.AlignCorners() or not o.HalfPixelCenters():
                raise ValueError(f"{path.name}: RESIZE_BILINEAR is supported with half-pixel centres only")
            kw = dict(shape=tuple(int(s) for s in g.Tensors(op.OutputsAsNumpy()[0]).ShapeAsNumpy()[1:]))
            acts, wts = acts[:1], ()
        elif kind == "DEPTH_TO_SPACE":
            o = tflite.DepthToSpaceOptions()
            o.Init(opts.Bytes, opts.Pos)
            kw = dict(block=o.BlockSize())
        elif kind == "CONCATENATION":
            o = tflite.ConcatenationOptions()
            o.Init(opts.Bytes, opts.Pos)
            kw = dict(axis=o.Axis())
        elif kind == "RESHAPE":
            kw = dict(shape=tuple(int(s) for s in g.Tensors(op.OutputsAsNumpy()[0]).ShapeAsNumpy()[1:]))
            acts, wts = acts[:1], ()
        ops.append(Op(kind, acts, out, wts, **kw))
    inp = g.Inputs(0)
    graph = Graph(
        name=path.name, input=tname(inp),
        input_shape=tuple(int(s) for s in g.Tensors(inp).ShapeAsNumpy()[1:]),
        outputs=tuple(tname(g.Outputs(i)) for i in range(g.OutputsLength())), ops=tuple(ops))
    return graph, weights
