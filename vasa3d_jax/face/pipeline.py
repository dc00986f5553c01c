"""``analyze_faces``: images -> faces, boxes, 468 landmarks and irises, with MediaPipe's networks.

The pipeline (geometry.py has the equations; ``shared/reference/mediapipe-face.md`` the sources):

  image --letterbox 128--> BlazeFace --decode, weighted NMS--> K boxes + 6 keypoints (largest first)
        --rotated 1.5x box crop 192--> face mesh --> 468 (x, y, z) + presence
        --two rotated eye crops 64 (one flipped)--> iris model --> 71 eye-contour + 5 iris points

Two backends run the same pre- and post-processing (pure JAX, vmapped over frames and faces, static
shapes: a fixed number of faces per frame with a validity mask) and differ only in who runs the
three networks: ``"flax"`` (nets.py, jitted XLA, the default) or ``"litert"`` (the ai-edge-litert
interpreter on the same ``.tflite`` files, one image at a time; the independent reference).

Output coordinates are pixels with pixel centres at +0.5 (DESIGN.md's camera convention), i.e.
MediaPipe's normalised x * W + 0.5. ``z`` is MediaPipe's relative depth, in units of the image width
(negative is towards the camera; multiply by W for pixels). Images larger than
``MAX_ANALYSIS_SIDE`` are block-averaged by an integer factor first and the results scaled back, so
that the crops do not alias; landmarks are always in the original image's pixels.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from . import assets, geometry as G
from .errors import (FaceTooSmallError, LowConfidenceWarning, ModelFilesMissingError,
                     MultipleFacesWarning, NoFaceError, NotAnImageError)
from .image import as_rgb, load_image

__all__ = ["FaceAnalysis", "analyze_faces", "face_pipeline", "flax_nets", "MIN_FACE_PX",
           "MAX_ANALYSIS_SIDE"]

# A face whose detector box is narrower than this gives a 192-px mesh crop upsampled > 3x from
# fewer than 60 source pixels: the landmarks then describe blur, not a face.
MIN_FACE_PX = 40
# Images whose longer side exceeds this are block-averaged before analysis (a 12000 x 9000 photo
# by 6); the detector sees a 128-px thumbnail either way, and the mesh crop needs < ~4x downsampling.
MAX_ANALYSIS_SIDE = 2048
PRESENCE_THRESHOLD = 0.5  # face_landmark_front_cpu.pbtxt: min_tracking_confidence default
PIXEL_CENTRE = 0.5        # MediaPipe's x * W is OpenCV's coordinate; ours puts pixel centres at +0.5


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=["box", "score", "keypoints", "landmarks", "iris", "eye_contours",
                                "presence", "valid"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class FaceAnalysis:
    """One face (or one face per frame: every array gains a leading (T,) axis).

    box: (4,) xmin, ymin, xmax, ymax, pixels (detector box)
    score: () detector confidence in [0, 1]
    keypoints: (6, 2) detector keypoints, pixels: subject's right eye, left eye, nose tip, mouth,
        right ear tragion, left ear tragion
    landmarks: (468, 3) MediaPipe face mesh: x, y pixels; z relative depth in image widths
    iris: (2, 5, 2) per eye (0: landmarks 33/133, the subject's right; 1: 263/362) the iris centre,
        then the boundary points at larger x, top, smaller x, bottom (for an upright face), pixels
    eye_contours: (2, 71, 3) the iris model's eyelid, halo and brow points (mediapipe-face.md §4.3)
    presence: () the mesh model's face confidence in [0, 1]; <= 0.5 means "probably not a usable
        frontal face" (profile, strongly turned, occluded)
    valid: () bool, False where a frame had no usable face (batch results only; arrays are zero there)
    """

    box: jax.Array
    score: jax.Array
    keypoints: jax.Array
    landmarks: jax.Array
    iris: jax.Array
    eye_contours: jax.Array
    presence: jax.Array
    valid: jax.Array

    def __getitem__(self, i) -> "FaceAnalysis":
        return jax.tree_util.tree_map(lambda a: a[i], self)

    def __len__(self) -> int:
        return len(self.valid)


# --------------------------------------------------------------------------------------------
# Stages: pure functions of arrays (frames are the leading axis, faces the second).

def _detect_input(images):
    return jax.vmap(G.detector_input)(images)


def _decode(regressors, logits, letterbox, max_faces: int):
    """Detector outputs -> (T, K) boxes, keypoints (pixels), scores, valid; largest face first.
    letterbox = (left, top, side) is an array, so this compiles once for every image size."""
    anchor = jnp.asarray(G.anchors())
    offset, side = letterbox[:2], letterbox[2]

    def one(reg, logit):
        boxes, kps, scores = G.decode_detections(reg, logit, anchor)
        b, k, s, v = G.weighted_nms(boxes, kps, scores, max_faces)
        b = b * side + jnp.tile(offset, 2)
        k = k * side + offset
        area = jnp.where(v, jnp.prod(b[:, 2:] - b[:, :2], -1), -1.0)
        order = jnp.argsort(-area)  # largest face first, invalid slots last
        return b[order], k[order], s[order], v[order]

    return jax.vmap(one)(regressors, logits)


def _crops(images, rois, size: int, centred: bool, flip_last: bool):
    """(T, H, W, 3), (T, M, R, 4) ROIs -> (T, M, R, size, size, 3); the last ROI of each group is
    flipped when flip_last (the second eye). The only stage that depends on the image size."""
    def per_image(img, r):
        def group(rr):
            crops = [G.roi_crop(img, rr[i], size, centred, flip=flip_last and i == rr.shape[0] - 1)
                     for i in range(rr.shape[0])]
            return jnp.stack(crops)
        return jax.vmap(group)(r)
    return jax.vmap(per_image)(images, rois)


def _mesh_rois(boxes, keypoints):
    return jax.vmap(jax.vmap(G.mesh_roi))(boxes, keypoints)[:, :, None]  # (T, M, 1, 4)


def _mesh_output(mesh, flag, rois):
    t, m = rois.shape[:2]
    pts = mesh.reshape(t, m, 468, 3)
    landmarks = jax.vmap(jax.vmap(lambda p, r: G.project(p, r[0], G.MESH_SIZE)))(pts, rois)
    presence = jax.nn.sigmoid(flag.reshape(t, m))
    eyes = jax.vmap(jax.vmap(G.eye_rois))(landmarks)  # (T, M, 2, 4)
    return landmarks, presence, eyes


def _iris_output(contours, iris, eyes):
    t, m = eyes.shape[:2]
    contours = contours.reshape(t, m, 2, 71, 3)
    iris = iris.reshape(t, m, 2, 5, 3)

    def one(c, i, e):  # one face: (2, 71, 3), (2, 5, 3), (2, 4)
        pc = jnp.stack([G.project(c[0], e[0], G.IRIS_SIZE), G.project(c[1], e[1], G.IRIS_SIZE, True)])
        pi = jnp.stack([G.project(i[0], e[0], G.IRIS_SIZE), G.project(i[1], e[1], G.IRIS_SIZE, True)])
        # The flipped eye's boundary points 1 and 3 come out mirrored (§4.5): swap them back so both
        # eyes list the boundary image-ordered.
        pi = pi.at[1].set(pi[1][jnp.array([0, 3, 2, 1, 4])])
        return pc, pi

    return jax.vmap(jax.vmap(one))(contours, iris, eyes)


_STAGES = (_detect_input, _decode, _mesh_rois, _crops, _mesh_output, _iris_output)
_JIT_STAGES = (jax.jit(_detect_input), jax.jit(_decode, static_argnums=3), jax.jit(_mesh_rois),
               jax.jit(_crops, static_argnums=(2, 3, 4)), jax.jit(_mesh_output), jax.jit(_iris_output))


def face_pipeline(images, run_detector, run_mesh, run_iris, max_faces: int, num_meshes: int,
                  jit_stages: bool = True):
    """The whole pipeline on frames (T, H, W, 3) in [0, 1] -> dict of (T, num_meshes, ...) arrays.

    ``run_*`` map a batch of network inputs to the network's outputs (nets.py applied, or LiteRT).
    With Flax runners and ``jit_stages=False`` this is one pure function: jit or vmap it whole.
    With ``jit_stages`` each stage is jitted on its own and only the crops depend on the image
    size, so a new image size costs three small compilations. Coordinates are OpenCV's here
    (``analyze_faces`` converts).
    """
    detect_input, decode, mesh_rois, crops, mesh_output, iris_output = (
        _JIT_STAGES if jit_stages else _STAGES)
    t, h, w, _ = images.shape
    reg, logit = run_detector(detect_input(images))
    letterbox = jnp.asarray(G.letterbox(h, w), jnp.float32)
    boxes, kps, scores, valid = decode(reg, logit, letterbox, max_faces)
    boxes, kps, scores, valid = (a[:, :num_meshes] for a in (boxes, kps, scores, valid))
    rois = mesh_rois(boxes, kps)
    mesh_in = crops(images, rois, G.MESH_SIZE, False, False)
    mesh, flag = run_mesh(mesh_in.reshape(-1, G.MESH_SIZE, G.MESH_SIZE, 3))
    landmarks, presence, eyes = mesh_output(mesh, flag, rois)
    eye_in = crops(images, eyes, G.IRIS_SIZE, True, True)
    contours, iris = run_iris(eye_in.reshape(-1, G.IRIS_SIZE, G.IRIS_SIZE, 3))
    contours, iris = iris_output(contours, iris, eyes)
    return dict(box=boxes, score=scores, keypoints=kps, landmarks=landmarks, iris=iris,
                eye_contours=contours, presence=presence, valid=valid)


# --------------------------------------------------------------------------------------------
# Backends: who runs the three networks.

@functools.cache
def _flax_runner(name: str):
    """Run a ported net on any batch as fixed chunks of ``nets.CHUNK`` images (the last zero-padded):
    each net compiles once per process whatever the number of frames or faces, and chunks run as
    fast per image as one big batch or faster (nets.CHUNK says why)."""
    from . import nets
    module, variables = nets.load_net(name)
    apply = jax.jit(module.apply)

    def run(x):
        n = x.shape[0]
        pad = -n % nets.CHUNK
        x = jnp.pad(x, ((0, pad),) + ((0, 0),) * (x.ndim - 1))
        outs = [apply(variables, x[i:i + nets.CHUNK]) for i in range(0, n + pad, nets.CHUNK)]
        return tuple(jnp.concatenate(o)[:n] for o in zip(*outs))

    return run


def flax_nets():
    """(run_detector, run_mesh, run_iris) as pure functions of arrays (the ported nets applied in
    chunks with ``lax.map``), for ``face_pipeline(..., jit_stages=False)`` under one ``jax.jit``."""
    from . import nets
    (det, dv), (mesh, mv), (iris, iv) = (nets.load_net(n)
                                         for n in (assets.DETECTOR, assets.LANDMARKS, assets.IRIS))
    return (lambda x: nets.apply_chunked(det, dv, x), lambda x: nets.apply_chunked(mesh, mv, x),
            lambda x: nets.apply_chunked(iris, iv, x))


@functools.cache
def _litert_interpreter(name: str):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ModelFilesMissingError(
            'backend="litert" needs ai-edge-litert: python -m pip install "ai-edge-litert==2.3.0"') from None
    it = Interpreter(model_path=str(assets.model_path(name)))
    it.allocate_tensors()
    return it


def _litert_runner(name: str):
    it = _litert_interpreter(name)
    inp = it.get_input_details()[0]["index"]
    outs = [d["index"] for d in it.get_output_details()]

    def run(x):
        x = np.asarray(x, np.float32)
        res = [[] for _ in outs]
        for b in range(x.shape[0]):
            it.set_tensor(inp, x[b:b + 1])
            it.invoke()
            for r, o in zip(res, outs):
                r.append(it.get_tensor(o).reshape(-1).copy())
        return tuple(np.stack(r) for r in res)

    return run


def _runners(backend: str):
    if backend == "flax":
        make = _flax_runner
    elif backend == "litert":
        make = _litert_runner
    else:
        raise ValueError(f'backend must be "flax" or "litert"; got {backend!r}')
    det, mesh, iris = (make(n) for n in (assets.DETECTOR, assets.LANDMARKS, assets.IRIS))

    def run_detector(x):
        reg, logit = det(x)
        return jnp.reshape(reg, (-1, 896, 16)), jnp.reshape(logit, (-1, 896, 1))

    return run_detector, mesh, iris


# --------------------------------------------------------------------------------------------
# The public entry point.

def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Average f x f pixel blocks of (..., H, W, C) (trailing rows/columns that do not fill a block
    are dropped); works on the raw dtype so a huge uint8 photo is never expanded to float32 whole."""
    *lead, h, w, c = a.shape
    h2, w2 = h // f, w // f
    out = np.empty((*lead, h2, w2, c), np.float32)
    step = max(1, 256 // f)  # rows of blocks per chunk: bounded temporaries
    for r in range(0, h2, step):
        blk = a[..., r * f:(r + step) * f, : w2 * f, :]
        blk = blk.reshape(*lead, blk.shape[-3] // f, f, w2, f, c)
        out[..., r:r + step, :, :] = blk.mean(axis=(-4, -2), dtype=np.float32)
    return out


def _prepare(images, name: str):
    """Validate and (if huge) downscale -> (float32 frames (T, h, w, 3), scale factor, batched?)."""
    a = np.asarray(images)
    batched = a.ndim == 4
    if a.ndim not in (2, 3, 4):
        raise NotAnImageError(f"{name}: expected (H, W, 3) or frames (T, H, W, 3); got shape {a.shape}")
    h, w = a.shape[-3:-1] if a.ndim >= 3 and a.shape[-1] in (1, 3, 4) else a.shape[-2:]
    f = max(1, math.ceil(max(h, w) / MAX_ANALYSIS_SIDE))
    if f > 1:
        if a.ndim == 2 or a.shape[-1] not in (1, 3, 4):
            a = a[..., None]
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(a.dtype, 1.0)
        a = _block_mean(a, f) / np.float32(scale)
    if batched:
        frames = np.stack([as_rgb(x, f"{name} frame {i}") for i, x in enumerate(a)])
    else:
        frames = as_rgb(a, name)[None]
    return np.ascontiguousarray(frames, np.float32), f, batched


def _to_pixels(out: dict, f: int, width: int) -> dict:
    """OpenCV coordinates of the analysed (maybe downscaled by f) frames -> original pixels; z in
    image widths (``width`` is the analysed frames' width: z and width scale together)."""
    res = {k: np.asarray(v) for k, v in out.items()}
    res["iris"] = res["iris"][..., :2]  # the iris model's z is not used (MediaPipe overwrites it too)
    for k in ("box", "keypoints", "iris"):
        res[k] = (res[k] + PIXEL_CENTRE) * f
    for k in ("landmarks", "eye_contours"):
        xy = (res[k][..., :2] + PIXEL_CENTRE) * f
        res[k] = np.concatenate([xy, res[k][..., 2:] / width], -1).astype(np.float32)
    return res


def analyze_faces(images, backend: str = "flax", max_faces: int = 4, min_face_px: int = MIN_FACE_PX,
                  name: str | None = None):
    """Faces, landmarks and irises of an image or of video frames.

    images: a path (read with ``load_image``), an (H, W, [1|3|4]) image, or (T, H, W, 3) frames;
        uint8, uint16 or float in [0, 1].
    backend: "flax" (ported networks, jitted) or "litert" (the reference interpreter).
    Returns, for one image, a list of FaceAnalysis, largest face first (warns with
    MultipleFacesWarning when there are several, LowConfidenceWarning for doubtful ones); raises
    NoFaceError or FaceTooSmallError when there is no usable face. For frames, one FaceAnalysis of
    (T, ...) arrays holding the largest face per frame, ``valid`` False where there is none.
    """
    if isinstance(images, (str, os.PathLike)):
        name = name or os.fspath(images)
        images = load_image(images)
    name = name or "image"
    frames, f, batched = _prepare(images, name)
    t, h, w, _ = frames.shape
    width = w * f
    out = face_pipeline(jnp.asarray(frames), *_runners(backend), max_faces=max_faces,
                        num_meshes=1 if batched else max_faces)
    res = _to_pixels(out, f, w)
    size = res["box"][..., 2:] - res["box"][..., :2]
    big = res["valid"] & (size.min(-1) >= min_face_px)
    if batched:
        res["valid"] = big
        res = {k: np.where(res["valid"].reshape(res["valid"].shape + (1,) * (v.ndim - 2)), v, 0)
               .astype(v.dtype)[:, 0] for k, v in res.items()}
        return FaceAnalysis(**res)
    res = {k: v[0] for k, v in res.items()}
    if not res["valid"].any():
        raise NoFaceError(
            f"no face found in {name} ({width}x{h * f} px). The detector needs a roughly frontal face "
            f"that fills at least ~1/8 of the image's shorter side; crop closer to the face or use "
            f"another photo.")
    if not big.any():
        bw, bh = size[0, 0]
        raise FaceTooSmallError(
            f"the face in {name} is only {bw:.0f}x{bh:.0f} px; landmarks need a face at least "
            f"{min_face_px} px wide. Use a higher-resolution photo (or crop it closer to the face).")
    faces = [FaceAnalysis(**{k: v[i] for k, v in res.items()}) for i in np.flatnonzero(big)]
    n_small = int(res["valid"].sum()) - len(faces)
    if len(faces) > 1 or n_small:
        warnings.warn(
            f"{len(faces)} faces found in {name}; returning them largest first"
            + (f" ({n_small} more smaller than {min_face_px} px were skipped)" if n_small else ""),
            MultipleFacesWarning, stacklevel=2)
    for i, face in enumerate(faces):
        if face.presence <= PRESENCE_THRESHOLD:
            warnings.warn(
                f"face {i} in {name} has low landmark confidence ({float(face.presence):.2f} <= "
                f"{PRESENCE_THRESHOLD}; detector score {float(face.score):.2f}): probably a profile, "
                f"strongly turned or occluded face, whose landmarks are unreliable. Use a frontal photo.",
                LowConfidenceWarning, stacklevel=2)
    return faces
