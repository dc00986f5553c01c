"""MediaPipe face-mesh landmark index tables (the one home for them in ``face/``) and the
measurements read off them.

Indices are those of MediaPipe's 468-point face mesh (mediapipe-face.md §5;
``face_mesh_connections.py``). Subject's right is the image's left for a frontal face.

Mouth measurement (issue 21 §4), per face, in units of the inter-ocular distance:

    (1) gap = |p_13 - p_14| / |p_33 - p_263|

p_13 / p_14 the upper / lower inner-lip midpoints, p_33 / p_263 the outer eye corners (x, y only: the
image-plane distances, so that the ratio does not depend on the image size). A closed mouth reads
~0.0-0.02, an open vowel ~0.1-0.3 (issue 21).
"""

from __future__ import annotations

import numpy as np

# FACEMESH_FACE_OVAL, clockwise from the forehead (10): contour points that slide with pose.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
# Eye corners: subject's right eye 33 (outer) / 133 (inner), left eye 263 / 362 (FACEMESH_RIGHT_EYE /
# FACEMESH_LEFT_EYE); the outer canthi define the inter-ocular distance (encode.py eq. 5, eq. 1 here).
EYE_R_CORNERS = (33, 133)
EYE_L_CORNERS = (263, 362)
OUTER_CANTHI = (33, 263)
# Eyelids (refinement lists of tensors_to_face_landmarks_with_attention.pbtxt; middles 159/145, 386/374).
EYE_R_UPPER = (246, 161, 160, 159, 158, 157, 173)
EYE_R_LOWER = (7, 163, 144, 145, 153, 154, 155)
EYE_L_UPPER = (466, 388, 387, 386, 385, 384, 398)
EYE_L_LOWER = (249, 390, 373, 374, 380, 381, 382)
# Lips (same lists): inner contour 78..308, outer 61..291; the opening is the distance 13-14.
LIPS_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
LIPS_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LIPS_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
MOUTH_OPENING = (13, 14)
MOUTH_CORNERS = (61, 291)  # outer lip corners: mouth width
# Gaze: the iris model's centre point (index 0 of its 5; mediapipe-face.md §4.3), one per eye,
# matched to the eye whose corners (EYE_R_CORNERS / EYE_L_CORNERS) it lies between.
IRIS_CENTRE = 0
# Rigid init weights: MediaPipe geometry_pipeline_metadata_landmarks.pbtxt (portrait-notes.md §1.3);
# the two groups the notes give as a range (0.014-0.019, 0.005-0.010) take its midpoint.
PROCRUSTES_WEIGHTS = {
    129: 0.121, 358: 0.121, 4: 0.071, 136: 0.067, 365: 0.067, 33: 0.059, 263: 0.059, 133: 0.053,
    362: 0.053, 205: 0.047, 425: 0.047, 6: 0.032, 198: 0.025, 420: 0.025,
    **{i: 0.0165 for i in (121, 350, 143, 372, 119, 348, 147, 376)},
    **{i: 0.0075 for i in (10, 54, 284, 67, 297, 117, 346, 127, 356, 132, 361)},
}


def interocular_distance(landmarks) -> np.ndarray:
    """|p_33 - p_263| in the image plane: ``(..., 468, 2|3) -> (...)`` (the landmarks' units)."""
    lm = np.asarray(landmarks, np.float64)
    if lm.shape[-2:-1] != (468,) or lm.shape[-1] not in (2, 3):
        raise ValueError(f"landmarks have shape {lm.shape}; expected (..., 468, 2 or 3) MediaPipe face-mesh "
                         "points (FaceAnalysis.landmarks)")
    a, b = OUTER_CANTHI
    return np.linalg.norm(lm[..., a, :2] - lm[..., b, :2], axis=-1)


def inner_lip_gap(landmarks) -> np.ndarray:
    """Eq. 1: the inner-lip gap over the inter-ocular distance, ``(..., 468, 2|3) -> (...)``.

    NaN where the eye corners coincide (no face: ``FaceAnalysis.valid`` False gives zeros).
    """
    lm = np.asarray(landmarks, np.float64)
    iod = interocular_distance(lm)
    top, bottom = MOUTH_OPENING
    gap = np.linalg.norm(lm[..., top, :2] - lm[..., bottom, :2], axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(iod > 1e-6, gap / np.where(iod > 1e-6, iod, 1.0), np.nan)
