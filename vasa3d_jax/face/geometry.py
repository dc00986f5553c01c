"""MediaPipe's face pipeline around the networks, as pure JAX functions of one frame (vmap for many).

Sources: ``shared/reference/mediapipe-face.md`` (section numbers below), which quotes MediaPipe
v0.10.21 (github google-ai-edge/mediapipe, tag v0.10.21) and was verified against ``mp.solutions``.

Coordinates inside this module are OpenCV's (pixel (r, c) centred at x = c, y = r), which is what
MediaPipe's crops use; ``pipeline`` shifts results by +0.5 to the project's convention (pixel centres
at +0.5, as the camera in DESIGN.md).

1. Detector input (§2.1): the whole image, letterboxed to a square of side L = max(H, W) about its
   centre, sampled corner-to-corner (no half-pixel shift): tensor pixel i <- tl + i L / 128;
   bilinear, zero border, scaled to [-1, 1] (the letterbox becomes -1).
2. Anchors (§2.2): 16x16 cells x 2 (stride 8), then 8x8 x 6 (stride 16); centre ((x+.5)/W_fm,
   (y+.5)/H_fm), w = h = 1. The full-range detector (``face_detection_full_range.pbtxt`` at MP commit
   c688862570156908cd95303afb06beb0935e5cc6: 192x192 input, num_layers 1, strides 4,
   interpolated_scale_aspect_ratio 0, so one anchor per cell) has 48x48 cells x 1 = 2304 anchors.
3. Decoding (§2.3): centre = raw[0:2]/S + anchor, size = raw[2:4]/S, keypoint k = raw[4+2k:6+2k]
   /S + anchor (S = the input side, 128 or 192: x/y/w/h_scale); score = sigmoid(clip(logit, -100,
   100)), kept if >= 0.5 (short range) or >= 0.6 (full range: min_score_thresh in the same file).
4. Weighted NMS (§2.5): repeatedly take the best remaining detection; its cluster is every remaining
   one with IoU > 0.3; output the score-weighted mean box and keypoints with the best one's score.
   Here a fixed number K of iterations with a validity mask (static shapes).
5. Mesh ROI (§3.1): centre = box centre, side = 1.5 max(w, h) px, rotation
   r = -atan2(-(y1 - y0), x1 - x0) from keypoint 0 to 1 (the eyes), wrapped to [-pi, pi).
6. Mesh crop (§3.2): 192x192, corner-to-corner, p(u, v) = c + R(r) ((u/192 - 1/2) S, (v/192 - 1/2) S),
   bilinear, replicated border, [0, 1]. Landmarks map back by the same formula (§3.4); z scales as x.
7. Eye ROIs (§4.1): eye 0 from landmark 33 -> 133, eye 1 from 362 -> 263; centre the midpoint,
   side 2.3 max(|dx|, |dy|), rotation as in 5. Crop (§4.2) 64x64 pixel-centre aligned
   (p = c + R(r)(((i + 1/2)/64 - 1/2) S, ...)), eye 1 flipped horizontally; outputs x <- 64 - x for it.
   MediaPipe crops at native resolution and then resizes (cv::resize, INTER_AREA when shrinking);
   one bilinear warp is used here instead, so the iris crop is not bit-identical to MediaPipe's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DETECTOR_SIZE", "FULL_RANGE_SIZE", "DETECTORS", "MESH_SIZE", "IRIS_SIZE", "anchors", "bilinear", "detector_input",
    "decode_detections", "weighted_nms", "mesh_roi", "roi_crop", "project", "eye_rois",
]

DETECTOR_SIZE = 128        # face_detection_short_range.tflite input
FULL_RANGE_SIZE = 192      # face_detection_full_range_sparse.tflite input
MESH_SIZE = 192            # face_landmark.tflite input
IRIS_SIZE = 64             # iris_landmark.tflite input
MIN_SCORE = 0.5            # face_detection.pbtxt: min_score_thresh
FULL_RANGE_MIN_SCORE = 0.6  # face_detection_full_range.pbtxt: min_score_thresh
NMS_IOU = 0.3              # face_detection.pbtxt: min_suppression_threshold
SCORE_CLIP = 100.0         # face_detection.pbtxt: score_clipping_thresh
MESH_ROI_SCALE = 1.5       # face_detection_front_detection_to_roi.pbtxt: scale_x/y
EYE_ROI_SCALE = 2.3        # iris_landmark_landmarks_to_roi.pbtxt: scale_x/y
EYE_CORNERS = ((33, 133), (362, 263))  # iris_tracking_cpu.pbtxt: start -> end; the second is flipped


# detector -> (input side, min score, ((feature map side, anchors per cell), ...)) (items 2-3 above)
DETECTORS = {"short": (DETECTOR_SIZE, MIN_SCORE, ((16, 2), (8, 6))),
             "full": (FULL_RANGE_SIZE, FULL_RANGE_MIN_SCORE, ((48, 1),))}


def anchors(detector: str = "short") -> np.ndarray:
    """(896, 2) (short range) or (2304, 2) (full range) anchor centres in [0, 1] tensor units, in the
    model's output order (§2.2)."""
    out = []
    for fm, per_cell in DETECTORS[detector][2]:
        y, x = np.meshgrid(np.arange(fm), np.arange(fm), indexing="ij")
        c = np.stack([(x + 0.5) / fm, (y + 0.5) / fm], -1).reshape(-1, 1, 2)
        out.append(np.repeat(c, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(out).astype(np.float32)


def bilinear(image, x, y, border: str):
    """Sample image (H, W, C) at OpenCV pixel coordinates x, y (any equal shapes) -> (..., C).

    border 'zero' (cv2.BORDER_CONSTANT 0) or 'replicate' (cv2.BORDER_REPLICATE).
    """
    h, w, _ = image.shape
    x0, y0 = jnp.floor(x), jnp.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
    flat = image.reshape(h * w, -1)

    def tap(yi, xi):
        v = flat[jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)]
        if border == "zero":
            v = v * ((xi >= 0) & (xi < w) & (yi >= 0) & (yi < h))[..., None]
        return v

    top = tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx
    bot = tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bot * fy


def letterbox(h: int, w: int) -> tuple[float, float, float]:
    """(left, top, side) of the square detector ROI around an H x W image, in pixels (§2.1)."""
    side = float(max(h, w))
    return (w - side) / 2.0, (h - side) / 2.0, side


def _axis_taps(coord, n: int):
    """1-D bilinear taps at OpenCV coordinates coord with zero border: (i0, i1, w0, w1)."""
    c0 = jnp.floor(coord)
    f = coord - c0
    c0 = c0.astype(jnp.int32)
    inside = lambda i: ((i >= 0) & (i < n)).astype(coord.dtype)
    return (jnp.clip(c0, 0, n - 1), jnp.clip(c0 + 1, 0, n - 1),
            (1 - f) * inside(c0), f * inside(c0 + 1))


def detector_input(image, size: int = DETECTOR_SIZE):
    """(H, W, 3) in [0, 1] -> (size, size, 3) in [-1, 1]: letterboxed, corner-to-corner (§2.1).

    The grid is axis-aligned, so the bilinear warp is separable: interpolate the 128 needed rows,
    then the 128 columns of those (two contiguous gathers instead of 4 x 128^2 point gathers).
    """
    h, w, _ = image.shape
    left, top, side = letterbox(h, w)
    t = jnp.arange(size, dtype=jnp.float32) * (side / size)
    y0, y1, wy0, wy1 = _axis_taps(top + t, h)
    x0, x1, wx0, wx1 = _axis_taps(left + t, w)
    rows = image[y0] * wy0[:, None, None] + image[y1] * wy1[:, None, None]   # (128, W, 3)
    out = rows[:, x0] * wx0[None, :, None] + rows[:, x1] * wx1[None, :, None]
    return out * 2.0 - 1.0


def decode_detections(regressors, logits, anchor, size: int = DETECTOR_SIZE, min_score: float = MIN_SCORE):
    """(A, 16), (A, 1) -> boxes (A, 4) xmin ymin xmax ymax, keypoints (A, 6, 2), scores (A,).

    All in [0, 1] tensor units (§2.3-2.4); size is the detector's input side, min_score its threshold.
    """
    r = regressors / size
    centre = r[:, 0:2] + anchor
    size = r[:, 2:4]
    boxes = jnp.concatenate([centre - size / 2, centre + size / 2], -1)
    keypoints = r[:, 4:].reshape(-1, 6, 2) + anchor[:, None]
    scores = jax.nn.sigmoid(jnp.clip(logits[:, 0], -SCORE_CLIP, SCORE_CLIP))
    valid = (scores >= min_score) & (size[:, 0] > 0) & (size[:, 1] > 0)  # ConvertToDetections
    return boxes, keypoints, jnp.where(valid, scores, -1.0)


def _iou(box, boxes):
    lo = jnp.maximum(box[:2], boxes[:, :2])
    hi = jnp.minimum(box[2:], boxes[:, 2:])
    inter = jnp.prod(jnp.clip(hi - lo, 0), -1)
    area = lambda b: jnp.prod(b[..., 2:] - b[..., :2], -1)
    union = area(box) + area(boxes) - inter
    return jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)


def weighted_nms(boxes, keypoints, scores, max_faces: int):
    """MediaPipe's WeightedNonMaxSuppression (§2.5) for at most max_faces clusters.

    Returns boxes (K, 4), keypoints (K, 6, 2), scores (K,), valid (K,) in descending score order
    (invalid entries last, zero-filled). scores < 0 mark dropped candidates.
    """
    n = scores.shape[0]

    def step(remaining, _):
        # One-hot selection instead of indexing (x[top], .at[top].set become gathers/scatters).
        s = jnp.where(remaining, scores, -1.0)
        best = s.max()
        top = jnp.arange(n) == jnp.argmax(s)
        ok = best >= 0.0  # decode_detections marks candidates under the threshold with -1
        top_box = jnp.where(top[:, None], boxes, 0.0).sum(0)
        members = (remaining & (_iou(top_box, boxes) > NMS_IOU) | top) & ok
        wts = jnp.where(members, scores, 0.0)
        total = jnp.where(ok, wts.sum(), 1.0)
        box = (wts[:, None] * boxes).sum(0) / total
        kps = (wts[:, None, None] * keypoints).sum(0) / total
        return remaining & ~members, (box, kps, jnp.where(ok, best, 0.0), ok)

    _, (b, k, s, v) = jax.lax.scan(step, scores >= 0.0, None, length=max_faces)
    return b, k, s, v


def _wrap(angle):
    return angle - 2 * jnp.pi * jnp.floor((angle + jnp.pi) / (2 * jnp.pi))


def _rotation(p0, p1):
    """MediaPipe's ROI rotation from point p0 to p1 (target angle 0), y pointing down (§3.1)."""
    return _wrap(-jnp.arctan2(-(p1[..., 1] - p0[..., 1]), p1[..., 0] - p0[..., 0]))


def mesh_roi(box, keypoints):
    """Pixel box (4,) and keypoints (6, 2) -> ROI (cx, cy, side, rotation) for the mesh crop (§3.1)."""
    centre = (box[:2] + box[2:]) / 2
    side = MESH_ROI_SCALE * jnp.max(box[2:] - box[:2])
    return jnp.stack([centre[0], centre[1], side, _rotation(keypoints[0], keypoints[1])])


def eye_rois(landmarks):
    """(468, >=2) pixel landmarks -> (2, 4) eye ROIs (cx, cy, side, rotation) (§4.1)."""
    out = []
    for a, b in EYE_CORNERS:
        p0, p1 = landmarks[a, :2], landmarks[b, :2]
        side = EYE_ROI_SCALE * jnp.max(jnp.abs(p1 - p0))
        c = (p0 + p1) / 2
        out.append(jnp.stack([c[0], c[1], side, _rotation(p0, p1)]))
    return jnp.stack(out)


def _to_image(roi, u, v):
    """ROI-relative offsets u, v (fractions of the side, centred) -> image x, y (§3.4)."""
    cx, cy, side, r = roi[0], roi[1], roi[2], roi[3]
    cos, sin = jnp.cos(r), jnp.sin(r)
    return cx + (cos * u - sin * v) * side, cy + (sin * u + cos * v) * side


def roi_crop(image, roi, size: int, centred: bool, flip: bool = False):
    """Crop a rotated square ROI to (size, size, 3), replicated border.

    centred=False: MediaPipe's ImageToTensor (corner-to-corner, §3.2); True: pixel centres (§4.2).
    """
    t = jnp.arange(size, dtype=jnp.float32)
    t = (t + 0.5) / size - 0.5 if centred else t / size - 0.5
    v, u = jnp.meshgrid(t, t, indexing="ij")
    x, y = _to_image(roi, u, v)
    crop = bilinear(image, x, y, "replicate")
    return crop[:, ::-1] if flip else crop


def project(points, roi, size: int, flip: bool = False):
    """(N, 3) network outputs in crop pixels (0..size) -> image pixels; z scaled like x (§3.4, §4.4)."""
    x = size - points[:, 0] if flip else points[:, 0]
    u, v = x / size - 0.5, points[:, 1] / size - 0.5
    xi, yi = _to_image(roi, u, v)
    return jnp.stack([xi, yi, points[:, 2] / size * roi[2]], -1)
