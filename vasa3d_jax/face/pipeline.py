"""``analyze_faces``: images -> faces, boxes, 468 landmarks and irises, with MediaPipe's networks.

The pipeline (geometry.py has the equations; ``shared/reference/mediapipe-face.md`` the sources):

  image --letterbox 128--> BlazeFace --decode, weighted NMS--> K boxes + 6 keypoints (largest first)
        (nothing found in a single image: --letterbox 192--> BlazeFace full range, the same decoding)
        --rotated 1.5x box crop 192--> face mesh --> 468 (x, y, z) + presence
        --two rotated eye crops 64 (one flipped)--> iris model --> 71 eye-contour + 5 iris points

Two backends run the same pre- and post-processing (pure JAX, vmapped over frames and faces, static
shapes: a fixed number of faces per frame with a validity mask) and differ only in who runs the
three networks: ``"flax"`` (nets.py, jitted XLA, the default) or ``"litert"`` (the ai-edge-litert
interpreter on the same ``.tflite`` files, one image at a time; the independent reference).

Output coordinates are pixels with pixel centres at +0.5 (DESIGN.md's camera convention), i.e.
MediaPipe's normalised x * W + 0.5. ``z`` is MediaPipe's relative depth, in units of the image width
(negative is towards the camera; multiply by W for pixels). Images whose longer side exceeds
``MAX_ANALYSIS_SIDE`` are resampled to that side first (an area average, any size and parity; the
scale back is per axis), so that the crops do not alias; landmarks are always in the original
image's pixels.

A single image is analysed at full resolution around each face: when the faces were found in a
downscaled image or by the full-range detector (a face far from the camera: a half-body or standing
photo), a square of ``REFINE_CONTEXT`` face sizes around each face is cut from the original photo and
analysed again (the short-range detector sees it large there), and its results replace the coarse ones.
"""

from __future__ import annotations

import dataclasses
import functools
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
# The full-resolution second look: a crop this many face-box sides wide around the face, where the
# face fills 1/4 of the side (the short-range detector needs ~1/8 or more).
REFINE_CONTEXT = 4.0
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

def _detect_input(images, detector: str = "short"):
    size = G.DETECTORS[detector][0]
    return jax.vmap(lambda im: G.detector_input(im, size))(images)


def _decode(regressors, logits, letterbox, max_faces: int, detector: str = "short"):
    """Detector outputs -> (T, K) boxes, keypoints (pixels), scores, valid; largest face first.
    letterbox = (left, top, side) is an array, so this compiles once for every image size."""
    size, min_score, _ = G.DETECTORS[detector]
    anchor = jnp.asarray(G.anchors(detector))
    offset, side = letterbox[:2], letterbox[2]

    def one(reg, logit):
        boxes, kps, scores = G.decode_detections(reg, logit, anchor, size, min_score)
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
_JIT_STAGES = (jax.jit(_detect_input, static_argnums=1), jax.jit(_decode, static_argnums=(3, 4)), jax.jit(_mesh_rois),
               jax.jit(_crops, static_argnums=(2, 3, 4)), jax.jit(_mesh_output), jax.jit(_iris_output))


def face_pipeline(images, run_detector, run_mesh, run_iris, max_faces: int, num_meshes: int,
                  jit_stages: bool = True, detector: str = "short"):
    """The whole pipeline on frames (T, H, W, 3) in [0, 1] -> dict of (T, num_meshes, ...) arrays.

    ``run_*`` map a batch of network inputs to the network's outputs (nets.py applied, or LiteRT);
    ``detector`` says which detector ``run_detector`` is ("short" or "full" range).
    With Flax runners and ``jit_stages=False`` this is one pure function: jit or vmap it whole.
    With ``jit_stages`` each stage is jitted on its own and only the crops depend on the image
    size, so a new image size costs three small compilations. Coordinates are OpenCV's here
    (``analyze_faces`` converts).
    """
    detect_input, decode, mesh_rois, crops, mesh_output, iris_output = (
        _JIT_STAGES if jit_stages else _STAGES)
    t, h, w, _ = images.shape
    reg, logit = run_detector(detect_input(images, detector))
    letterbox = jnp.asarray(G.letterbox(h, w), jnp.float32)
    boxes, kps, scores, valid = decode(reg, logit, letterbox, max_faces, detector)
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


def _runners(backend: str, detector: str = "short"):
    if backend == "flax":
        make = _flax_runner
    elif backend == "litert":
        make = _litert_runner
    else:
        raise ValueError(f'backend must be "flax" or "litert"; got {backend!r}')
    det_file = assets.DETECTOR if detector == "short" else assets.FULL_RANGE_DETECTOR
    det, mesh, iris = (make(n) for n in (det_file, assets.LANDMARKS, assets.IRIS))
    num_anchors = len(G.anchors(detector))

    def run_detector(x):
        reg, logit = det(x)
        return jnp.reshape(reg, (-1, num_anchors, 16)), jnp.reshape(logit, (-1, num_anchors, 1))

    return run_detector, mesh, iris


# --------------------------------------------------------------------------------------------
# The public entry point.

def _downscale(a: np.ndarray, h2: int, w2: int) -> np.ndarray:
    """(..., H, W, C) -> float32 (..., h2, w2, C): the area average of each target pixel's footprint
    (PIL's BOX filter, any scale factor), one channel at a time so a huge photo is never expanded
    to float32 whole. Target pixel i covers source pixels [i W/w2, (i + 1) W/w2)."""
    from PIL import Image

    *lead, h, w, c = a.shape
    flat = a.reshape(-1, h, w, c)
    out = np.empty((len(flat), h2, w2, c), np.float32)
    for i, frame in enumerate(flat):
        for ch in range(c):
            img = Image.fromarray(np.ascontiguousarray(frame[..., ch], np.float32), mode="F")
            out[i, ..., ch] = np.asarray(img.resize((w2, h2), Image.BOX))
    return out.reshape(*lead, h2, w2, c)


def _prepare(images, name: str):
    """Validate and (if huge) downscale -> (float32 frames (T, h, w, 3), per-axis scale (sx, sy) back
    to the original pixels, batched?)."""
    a = np.asarray(images)
    batched = a.ndim == 4
    if a.ndim not in (2, 3, 4):
        raise NotAnImageError(f"{name}: expected (H, W, 3) or frames (T, H, W, 3); got shape {a.shape}")
    h, w = a.shape[-3:-1] if a.ndim >= 3 and a.shape[-1] in (1, 3, 4) else a.shape[-2:]
    scale = np.ones(2, np.float64)
    if max(h, w) > MAX_ANALYSIS_SIDE:
        if a.ndim == 2 or a.shape[-1] not in (1, 3, 4):
            a = a[..., None]
        s = MAX_ANALYSIS_SIDE / max(h, w)
        h2, w2 = max(1, round(h * s)), max(1, round(w * s))
        unit = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(a.dtype, 1.0)
        a = _downscale(a, h2, w2) / np.float32(unit)
        scale = np.array([w / w2, h / h2])
    if batched:
        frames = np.stack([as_rgb(x, f"{name} frame {i}") for i, x in enumerate(a)])
    else:
        frames = as_rgb(a, name)[None]
    return np.ascontiguousarray(frames, np.float32), scale, batched


def _to_pixels(out: dict, scale: np.ndarray, width: int) -> dict:
    """OpenCV coordinates of the analysed (maybe downscaled by ``scale`` = (sx, sy)) frames ->
    original pixels; z in image widths (``width`` is the analysed frames' width: z and width scale
    together)."""
    res = {k: np.array(v) for k, v in out.items()}  # writable copies
    res["iris"] = res["iris"][..., :2]  # the iris model's z is not used (MediaPipe overwrites it too)
    sxy = scale.astype(np.float32)
    for k in ("box", "keypoints", "iris"):
        s = np.tile(sxy, 2) if k == "box" else sxy
        res[k] = ((res[k] + PIXEL_CENTRE) * s).astype(np.float32)
    for k in ("landmarks", "eye_contours"):
        xy = (res[k][..., :2] + PIXEL_CENTRE) * sxy
        res[k] = np.concatenate([xy, res[k][..., 2:] / width], -1).astype(np.float32)
    return res


def _analyse(images, name: str, backend: str, max_faces: int, detector: str = "short"):
    """One pass of the pipeline -> (dict of (T, K, ...) arrays in original pixels, batched?, (H, W))."""
    frames, scale, batched = _prepare(images, name)
    t, h, w, _ = frames.shape
    out = face_pipeline(jnp.asarray(frames), *_runners(backend, detector), max_faces=max_faces,
                        num_meshes=1 if batched else max_faces, detector=detector)
    size = (round(h * scale[1]), round(w * scale[0]))
    return _to_pixels(out, scale, w), batched, size, bool(np.any(scale != 1.0))


def _refine(image, res: dict, i: int, name: str, backend: str) -> dict | None:
    """Face ``i`` of a single image's ``res`` analysed again at full resolution in a square of
    ``REFINE_CONTEXT`` face sizes around it -> that face's arrays in original pixels (None where
    the second look finds no face)."""
    a = np.asarray(image)
    h, w = a.shape[:2]
    box = res["box"][0, i]
    side = REFINE_CONTEXT * float(max(box[2] - box[0], box[3] - box[1]))
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(w, int(np.ceil(cx + side / 2))), min(h, int(np.ceil(cy + side / 2)))
    if min(x1 - x0, y1 - y0) < 32:
        return None
    sub, _, _, _ = _analyse(a[y0:y1, x0:x1], name, backend, max_faces=4)
    sub = {k: v[0] for k, v in sub.items()}
    if not sub["valid"].any():
        return None
    centres = (sub["box"][:, :2] + sub["box"][:, 2:]) / 2
    dist = np.where(sub["valid"], np.linalg.norm(centres - [cx - x0, cy - y0], axis=-1), np.inf)
    j = int(np.argmin(dist))  # the face the crop was cut around (another may be bigger in it)
    one = {k: np.array(v[j]) for k, v in sub.items()}
    shift = np.array([x0, y0], np.float32)
    one["box"] = one["box"] + np.tile(shift, 2)
    for k in ("keypoints", "iris"):
        one[k] = one[k] + shift
    for k in ("landmarks", "eye_contours"):
        one[k][..., :2] += shift
        one[k][..., 2] *= (x1 - x0) / w  # z: crop widths -> image widths
    return one


def analyze_faces(images, backend: str = "flax", max_faces: int = 4, min_face_px: int = MIN_FACE_PX,
                  name: str | None = None):
    """Faces, landmarks and irises of an image or of video frames.

    images: a path (read with ``load_image``), an (H, W, [1|3|4]) image of any size (over
        ``MAX_ANALYSIS_SIDE`` it is resampled for the search, then each face is analysed at full
        resolution), or (T, H, W, 3) frames; uint8, uint16 or float in [0, 1].
    backend: "flax" (ported networks, jitted) or "litert" (the reference interpreter).
    Returns, for one image, a list of FaceAnalysis, largest face first (by detector box area; warns
    with MultipleFacesWarning when there are several, LowConfidenceWarning for doubtful ones);
    raises NoFaceError or FaceTooSmallError when there is no usable face. A single image where the
    short-range detector finds nothing is searched again with the full-range one (faces far from
    the camera). For frames, one FaceAnalysis of (T, ...) arrays holding the largest face per
    frame, ``valid`` False where there is none.
    """
    if isinstance(images, (str, os.PathLike)):
        name = name or os.fspath(images)
        images = load_image(images)
    name = name or "image"
    res, batched, (height, width), resampled = _analyse(images, name, backend, max_faces)
    size = res["box"][..., 2:] - res["box"][..., :2]
    big = res["valid"] & (size.min(-1) >= min_face_px)
    if batched:
        res["valid"] = big
        res = {k: np.where(res["valid"].reshape(res["valid"].shape + (1,) * (v.ndim - 2)), v, 0)
               .astype(v.dtype)[:, 0] for k, v in res.items()}
        return FaceAnalysis(**res)
    full_range = not res["valid"].any()
    if full_range:
        res, _, _, _ = _analyse(images, name, backend, max_faces, detector="full")
    if full_range or resampled:
        for i in np.flatnonzero(res["valid"][0]):
            one = _refine(images, res, int(i), name, backend)
            if one is not None:
                for k, v in one.items():
                    res[k][0, i] = v
        area = np.where(res["valid"][0], np.prod(res["box"][0, :, 2:] - res["box"][0, :, :2], -1), -1.0)
        order = np.argsort(-area, kind="stable")
        res = {k: v[:, order] for k, v in res.items()}
        size = res["box"][..., 2:] - res["box"][..., :2]
        big = res["valid"] & (size.min(-1) >= min_face_px)
    res = {k: v[0] for k, v in res.items()}
    if not res["valid"].any():
        raise NoFaceError(
            f"no face found in {name} ({width}x{height} px), with either of MediaPipe's detectors. "
            f"A roughly frontal face is needed, at least {min_face_px} px wide; use another photo.")
    if not big.any():
        bw, bh = size[0, 0]
        raise FaceTooSmallError(
            f"the face in {name} is only {bw:.0f}x{bh:.0f} px; landmarks need a face at least "
            f"{min_face_px} px wide. Use a higher-resolution photo (or crop it closer to the face).")
    big = big[0]
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
