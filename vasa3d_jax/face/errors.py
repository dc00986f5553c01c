"""The errors and warnings of face analysis. Every error is a ``ValueError`` subclass whose message
says what was wrong and what to do about it."""

from __future__ import annotations

__all__ = [
    "FaceAnalysisError", "NotAnImageError", "ImageTooSmallError", "NoFaceError", "FaceTooSmallError",
    "ModelFilesMissingError", "MultipleFacesWarning", "LowConfidenceWarning",
]


class FaceAnalysisError(ValueError):
    """Base class: the input cannot be analysed as given."""


class NotAnImageError(FaceAnalysisError):
    """The file is not a readable image (unknown format, empty or truncated) or the array is not one."""


class ImageTooSmallError(FaceAnalysisError):
    """The image is too small to contain a measurable face."""


class NoFaceError(FaceAnalysisError):
    """The detector found no face in the image."""


class FaceTooSmallError(FaceAnalysisError):
    """A face was found, but it covers too few pixels for its landmarks to mean anything."""


class ModelFilesMissingError(FaceAnalysisError):
    """The package that ships MediaPipe's ``.tflite`` files is not installed."""


class MultipleFacesWarning(UserWarning):
    """More than one face was found; all are returned, largest first."""


class LowConfidenceWarning(UserWarning):
    """A face was found but the landmark model doubts it (profile, strongly turned, occluded)."""
