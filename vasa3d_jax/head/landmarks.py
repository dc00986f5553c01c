"""MediaPipe face-mesh landmark index tables: the one copy for the whole code base.

Indices are vertices of MediaPipe's 468-point canonical face mesh (``face_mesh_connections.py`` of
the mediapipe wheel, FACEMESH_LIPS / _LEFT_EYE / _RIGHT_EYE / _FACE_OVAL / _LEFT_EYEBROW /
_RIGHT_EYEBROW; mediapipe-face.md §5). "Left" and "right" are the subject's (left = +x in the head
frame, MediaPipe's LEFT_EYE).

Why here, in ``head/``: the same indices name MediaPipe's detected landmarks (``face/``) and the
first 468 vertices of the built-in template head, whose face *is* the canonical mesh
(``head/template.py``). The head layer may not import ``face/`` (``check_layers.py``), while face,
avatar and portrait may all import ``head/``, so the lowest package that needs the tables holds them.

**Lip corners.** Each lip contour (inner: the mouth opening, 78 .. 308; outer: the vermilion
border, 61 .. 291) is stored as its two corners and two corner-free arcs, upper and lower, each
ordered from the subject's right corner to the left one:

    ring = (corner_r, *upper, corner_l, *reversed(lower))      the closed contour of FACEMESH_LIPS

A corner belongs to the upper and the lower lip alike, so it is in neither arc: the arcs and the
corners partition the contour (no landmark counted twice in a mean, no corner labelled "upper"
when arcs are told apart), and a path from corner to corner is written explicitly with its
corners. ``tests/head/test_landmarks.py`` checks every ring against the mediapipe wheel's own
connection lists. The eyes follow the same rule (corners apart from the lid arcs).
"""

from __future__ import annotations

# ---- face outline ----------------------------------------------------------------------------------
# FACEMESH_FACE_OVAL as one closed loop, clockwise in the image from the forehead (10): subject's
# left -> chin (152) -> right. Contour points that slide with pose (face/encode.py).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
FOREHEAD, CHIN = 10, 152
CHEEKS = (234, 454)  # FACE_OVAL's widest points (subject's right, left)

# ---- eyes --------------------------------------------------------------------------------------------
# Corners (outer, inner) and the lid arcs between them, outer -> inner (FACEMESH_RIGHT_EYE / _LEFT_EYE;
# the same lists as the refinement lists of tensors_to_face_landmarks_with_attention.pbtxt).
EYE_R_CORNERS = (33, 133)
EYE_R_UPPER = (246, 161, 160, 159, 158, 157, 173)
EYE_R_LOWER = (7, 163, 144, 145, 153, 154, 155)
EYE_L_CORNERS = (263, 362)
EYE_L_UPPER = (466, 388, 387, 386, 385, 384, 398)
EYE_L_LOWER = (249, 390, 373, 374, 380, 381, 382)
OUTER_CANTHI = (EYE_R_CORNERS[0], EYE_L_CORNERS[0])  # their distance is the inter-ocular distance
EYE_R_RING = (EYE_R_CORNERS[0], *EYE_R_UPPER, EYE_R_CORNERS[1], *EYE_R_LOWER[::-1])
EYE_L_RING = (EYE_L_CORNERS[0], *EYE_L_UPPER, EYE_L_CORNERS[1], *EYE_L_LOWER[::-1])

# ---- lips (module docstring: corners apart from the arcs) ----------------------------------------------
LIP_INNER_CORNERS = (78, 308)  # subject's right, left
LIP_INNER_UPPER = (191, 80, 81, 82, 13, 312, 311, 310, 415)
LIP_INNER_LOWER = (95, 88, 178, 87, 14, 317, 402, 318, 324)
LIP_OUTER_CORNERS = (61, 291)
LIP_OUTER_UPPER = (185, 40, 39, 37, 0, 267, 269, 270, 409)
LIP_OUTER_LOWER = (146, 91, 181, 84, 17, 314, 405, 321, 375)
LIP_INNER_RING = (LIP_INNER_CORNERS[0], *LIP_INNER_UPPER, LIP_INNER_CORNERS[1], *LIP_INNER_LOWER[::-1])
LIP_OUTER_RING = (LIP_OUTER_CORNERS[0], *LIP_OUTER_UPPER, LIP_OUTER_CORNERS[1], *LIP_OUTER_LOWER[::-1])
MOUTH_OPENING = (13, 14)  # inner-lip midpoints, upper and lower: their distance is the opening

# ---- brows -------------------------------------------------------------------------------------------
# FACEMESH_LEFT_EYEBROW / _RIGHT_EYEBROW: a lower and an upper line, each from the inner to the outer end.
BROW_L = ((285, 295, 282, 283, 276), (336, 296, 334, 293, 300))
BROW_R = ((55, 65, 52, 53, 46), (107, 66, 105, 63, 70))
