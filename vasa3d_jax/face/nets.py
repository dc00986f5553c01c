"""MediaPipe's face CNNs as Flax modules, built from the graphs in the ``.tflite`` files.

``TFLiteNet`` is one Flax Linen module whose structure is the op list that ``tflite_graph`` reads
from a model file (every layer, in MediaPipe's order) and whose parameters are that file's weights
(``load_net``). The three networks (``shared/reference/mediapipe-face.md`` §1.5):

- BlazeFace short range: 5x5/2 stem conv + ReLU, 16 BlazeBlocks
  ``y = ReLU(PW(DW3x3_s(x)) + pad_c(maxpool_s(x)))``, two SSD heads (16x16x88 -> 2 anchors/cell,
  8x8x96 -> 6 anchors/cell), 896 x (16 regressors, 1 logit).
- BlazeFace full range (``face_detection_full_range_sparse.tflite``): 3x3/2 stem conv + ReLU at 96x96,
  bottleneck residual blocks (explicit 1-px PAD, DW 3x3 VALID, 1x1 conv, fused ReLU), down to 6x6,
  then a feature pyramid back up (RESIZE_BILINEAR x2 + ADD) to 48x48; each head is a 1x1 conv,
  DW 3x3/2 and DEPTH_TO_SPACE 2 -> 48x48 cells x 1 anchor = 2304 x (16 regressors, 1 logit).
- face mesh ("facemesh-lite"): 3x3/2 stem + PReLU, BlazeBlocks with PReLU, a mesh head ending in a
  3x3/3 conv to 1404 = 468 x (x, y, z) and a face-flag head (1 logit).
- iris: 3x3/2 stem + PReLU, bottleneck residual blocks (1x1 or 2x2/2 reduce, DW 3x3, 1x1 expand,
  PReLU), an eye-contour head (213 = 71 x 3) and an iris head (15 = 5 x 3).

The ops and how they map onto XLA (layouts converted at load time, see ``tflite_graph``):

  CONV_2D            1x1/1 VALID as a matmul over channels; others ``lax.conv_general_dilated`` (HWIO)
  DEPTHWISE_CONV_2D  y[i, j, c] = b[c] + sum_{dy, dx} k[dy, dx, c] * x_pad[s*i + dy, s*j + dx, c],
                     written as kh*kw strided slices (XLA:CPU runs grouped convolutions slowly;
                     the slices fuse into one elementwise loop), SAME padding by TensorFlow's rule
                     (pad total max((out-1)s + k - in, 0), low = total // 2, as lax's 'SAME')
  PRELU              max(x, 0) + alpha[c] * min(x, 0), one alpha per channel
  PAD                zero channels appended at the end (residual skips that widen)
  MAX_POOL_2D        ``lax.reduce_window`` max
  RESHAPE / CONCAT   on the batch-major arrays (the files' batch of 1 becomes N)
  RESIZE_BILINEAR    TFLite's half-pixel-centre rule (``resize_bilinear``)
  DEPTH_TO_SPACE     y[h b + i, w b + j, c] = x[h, w, (i b + j) C + c] (TensorFlow's order)
  fused RELU         ``activation`` of CONV_2D / ADD applied after the op

All arithmetic is float32 at HIGHEST matmul precision. Outputs equal LiteRT's to float32 rounding
(tests/face/test_nets.py states the tolerances).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from . import assets
from .tflite_graph import Graph, Op, read_tflite

__all__ = ["TFLiteNet", "load_net", "apply_chunked", "CHUNK", "detector", "full_range_detector", "landmarks", "iris"]

# Images per sequential step in ``apply_chunked``. XLA:CPU runs each op over the whole batch before
# the next one; at batch 32 the activations (e.g. 32 x 96 x 96 x 16 floats = 19 MB) leave the cache
# and every op pays memory traffic. Four images per step keep them cache-sized: measured 3-5x faster
# per image than one batch-32 call on the project's 2-core CPU (experiments/bench_face.py).
CHUNK = 4

_HI = lax.Precision.HIGHEST


def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def depthwise_conv(x, kernel, bias, stride, padding):
    """x (N, H, W, C), kernel (kh, kw, C): depthwise conv as a sum of kh*kw strided slices."""
    kh, kw, _ = kernel.shape
    sh, sw = stride
    n, h, w, c = x.shape
    if padding == "SAME":
        ph, pw = _same_pads(h, kh, sh), _same_pads(w, kw, sw)
        x = jnp.pad(x, ((0, 0), ph, pw, (0, 0)))
        ho, wo = -(-h // sh), -(-w // sw)
    else:
        ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = bias
    for dy in range(kh):
        for dx in range(kw):
            win = lax.slice(x, (0, dy, dx, 0), (n, dy + (ho - 1) * sh + 1, dx + (wo - 1) * sw + 1, c),
                            (1, sh, sw, 1))
            y = y + win * kernel[dy, dx]
    return y


def conv(x, kernel, bias, stride, padding):
    """x (N, H, W, Cin), kernel HWIO."""
    kh, kw, cin, cout = kernel.shape
    if (kh, kw) == (1, 1) and stride == (1, 1):
        return jnp.einsum("nhwc,co->nhwo", x, kernel[0, 0], precision=_HI) + bias
    return lax.conv_general_dilated(x, kernel, stride, padding,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=_HI) + bias


def _resize_taps(n_in: int, n_out: int):
    """TFLite's half-pixel bilinear taps along one axis: source s = (i + 1/2) n_in / n_out - 1/2,
    lower = max(floor(s), 0), upper = min(ceil(s), n_in - 1), weight of upper = s - lower."""
    s = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    lo = np.maximum(np.floor(s), 0).astype(np.int32)
    hi = np.minimum(np.ceil(s), n_in - 1).astype(np.int32)
    return lo, hi, (s - lo).astype(np.float32)


def resize_bilinear(x, size):
    """x (N, H, W, C) -> (N, h, w, C), TFLite RESIZE_BILINEAR with half_pixel_centers (reference_ops
    ResizeBilinear: y = (1 - fy)((1 - fx) x[lo_y, lo_x] + fx x[lo_y, hi_x]) + fy(...))."""
    (y0, y1, fy), (x0, x1, fx) = _resize_taps(x.shape[1], size[0]), _resize_taps(x.shape[2], size[1])
    fy, fx = fy[:, None, None], fx[:, None]
    rows = x[:, y0] * (1 - fy) + x[:, y1] * fy
    return rows[:, :, x0] * (1 - fx) + rows[:, :, x1] * fx


def max_pool(x, window, stride, padding):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1), (1, *stride, 1), padding)


class TFLiteNet(nn.Module):
    """A MediaPipe CNN: input (N, H, W, 3) float32 -> tuple of the graph's outputs, batch-major.

    ``graph`` is the static op list of the model file (hashable, so the module is jit-static);
    parameters are named after the file's tensors, ``params[tensor_name]``. With ``aux=True`` the
    call returns ``(outputs, aux)``, aux holding every intermediate by its TFLite name.
    """

    graph: Graph  # ops in execution order, read by tflite_graph.read_tflite

    @nn.compact
    def __call__(self, x, aux: bool = False):
        g = self.graph
        if x.shape[1:] != g.input_shape:
            raise ValueError(f"{g.name} expects (N, {', '.join(map(str, g.input_shape))}); got {x.shape}")
        env = {g.input: x}
        for op in self.graph.ops:
            env[op.output] = self._apply(op, [env[n] for n in op.inputs])
        outs = tuple(env[n].reshape(x.shape[0], -1) if env[n].ndim == 4 else env[n] for n in g.outputs)
        return (outs, env) if aux else outs

    def _param(self, name, shape):
        return self.param(name, nn.initializers.zeros, shape, jnp.float32)

    def _apply(self, op: Op, xs):
        y = self._linear(op, xs)
        return jax.nn.relu(y) if op.activation == "RELU" else y

    def _linear(self, op: Op, xs):
        k = op.kind
        if k in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            cin = xs[0].shape[-1]
            if k == "CONV_2D":
                kernel = self._param(op.weights[0], (*op.window, cin, op.features))
                bias = self._param(op.weights[1], (kernel.shape[-1],))
                return conv(xs[0], kernel, bias, op.stride, op.padding)
            kernel = self._param(op.weights[0], (*op.window, cin))
            bias = self._param(op.weights[1], (cin,))
            return depthwise_conv(xs[0], kernel, bias, op.stride, op.padding)
        if k == "PRELU":
            alpha = self._param(op.weights[0], (xs[0].shape[-1],))
            return jnp.maximum(xs[0], 0) + alpha * jnp.minimum(xs[0], 0)
        if k == "RELU":
            return jax.nn.relu(xs[0])
        if k == "ADD":
            return xs[0] + xs[1]
        if k == "PAD":
            return jnp.pad(xs[0], ((0, 0), *op.pads))
        if k == "MAX_POOL_2D":
            return max_pool(xs[0], op.window, op.stride, op.padding)
        if k == "RESHAPE":
            return xs[0].reshape(xs[0].shape[0], *op.shape)
        if k == "CONCATENATION":
            return jnp.concatenate(xs, axis=op.axis)
        if k == "RESIZE_BILINEAR":
            return resize_bilinear(xs[0], op.shape[:2])
        if k == "DEPTH_TO_SPACE":
            n, h, w, c = xs[0].shape
            b = op.block
            y = xs[0].reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5)
            return y.reshape(n, h * b, w * b, c // (b * b))
        raise ValueError(f"unsupported op {k}")

def apply_chunked(module: TFLiteNet, variables, x, chunk: int = CHUNK):
    """``module.apply(variables, x)`` in sequential chunks of ``chunk`` images (``lax.map``); same
    outputs. The batch is zero-padded to a multiple of ``chunk`` and the padding dropped again."""
    n = x.shape[0]
    if n <= chunk:
        return module.apply(variables, x)
    pad = -n % chunk
    xs = jnp.pad(x, ((0, pad),) + ((0, 0),) * (x.ndim - 1)).reshape(-1, chunk, *x.shape[1:])
    outs = lax.map(lambda xx: module.apply(variables, xx), xs)
    return tuple(o.reshape(-1, *o.shape[2:])[:n] for o in outs)


@functools.cache
def load_net(name: str) -> tuple[TFLiteNet, dict]:
    """(module, variables) for one model file of ``assets`` (read once per process)."""
    graph, weights = read_tflite(assets.model_path(name))
    params = {}
    for op in graph.ops:
        for w in op.weights:
            params[w] = jnp.asarray(weights[w])
    return TFLiteNet(graph), {"params": params}


def detector():
    """BlazeFace short range: (N, 128, 128, 3) in [-1, 1] -> (regressors (N, 896, 16), logits (N, 896, 1))."""
    return load_net(assets.DETECTOR)


def full_range_detector():
    """BlazeFace full range: (N, 192, 192, 3) in [-1, 1] -> (regressors (N, 2304, 16), logits (N, 2304, 1))."""
    return load_net(assets.FULL_RANGE_DETECTOR)


def landmarks():
    """Face mesh: (N, 192, 192, 3) in [0, 1] -> (mesh (N, 1404), face-flag logit (N, 1))."""
    return load_net(assets.LANDMARKS)


def iris():
    """Iris: (N, 64, 64, 3) in [0, 1] -> (eye contours + brows (N, 213), iris (N, 15))."""
    return load_net(assets.IRIS)
