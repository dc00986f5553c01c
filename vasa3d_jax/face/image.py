"""Reading face images: any file PIL reads -> float32 RGB (H, W, 3) in [0, 1].

What it normalises, so that every later stage sees one format:
- EXIF orientation is applied (a phone photo stored sideways comes out upright);
- greyscale (L, I;16, I, F) is replicated to RGB; 16-bit data is scaled by 1/65535 (not truncated);
- alpha (RGBA, LA, palette with transparency) is composited over white, so a transparent
  background does not turn black;
- arrays go through the same checks (``as_rgb``): uint8, uint16 or float in [0, 1], (H, W),
  (H, W, 1), (H, W, 3) or (H, W, 4).
"""

from __future__ import annotations

import io
import os
import pathlib
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageTooSmallError, NotAnImageError

__all__ = ["load_image", "as_rgb", "MIN_IMAGE_SIDE"]

# The smallest image side that can hold a face of MIN_FACE_PX (pipeline.py) plus some context.
MIN_IMAGE_SIDE = 32

# PIL refuses images above ~179 MP as "decompression bombs"; a 12000x9000 photo (108 MP) is a
# legitimate input here, so allow up to 400 MP (1.2 GB as uint8 RGB) and say so above that.
MAX_PIXELS = 400_000_000


def _composite_over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return rgb * alpha[..., None] + (1.0 - alpha[..., None])


def as_rgb(image, name: str = "image") -> np.ndarray:
    """Any image array -> float32 (H, W, 3) in [0, 1]; raises NotAnImageError / ImageTooSmallError."""
    a = np.asarray(image)
    if a.dtype == object or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
        raise NotAnImageError(
            f"{name}: expected an image array (H, W), (H, W, 3) or (H, W, 4); got shape {a.shape} "
            f"dtype {a.dtype}. For a batch of frames pass (T, H, W, 3).")
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
        if not np.all(np.isfinite(a)):
            raise NotAnImageError(f"{name}: the image has NaN or infinite pixels; fix its source.")
        if a.size and (a.min() < -1e-3 or a.max() > 1.0 + 1e-3):
            raise NotAnImageError(
                f"{name}: float pixels must lie in [0, 1]; got [{a.min():.3g}, {a.max():.3g}]. "
                f"Divide 8-bit data by 255 (or pass it as uint8).")
        a = np.clip(a, 0.0, 1.0)
    else:
        raise NotAnImageError(f"{name}: unsupported pixel type {a.dtype}; use uint8, uint16 or float32.")
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 4:
        a = _composite_over_white(a[..., :3], a[..., 3])
    elif a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    h, w = a.shape[:2]
    if min(h, w) < MIN_IMAGE_SIDE:
        raise ImageTooSmallError(
            f"{name} is {w}x{h} pixels; face analysis needs at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} "
            f"(and a face at least 40 px wide). Use a larger photo.")
    return np.ascontiguousarray(a, np.float32)


def load_image(path) -> np.ndarray:
    """Read an image file (path or binary file object) -> float32 RGB (H, W, 3) in [0, 1].

    EXIF orientation applied, alpha composited over white, 16-bit greyscale scaled (module docstring).
    Raises NotAnImageError for a file that is not a readable image (also empty or truncated files).
    """
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else getattr(path, "name", "image")
    if isinstance(path, (str, os.PathLike)):
        p = pathlib.Path(path)
        if not p.is_file():
            raise NotAnImageError(f"{name}: no such file.")
        data = p.read_bytes()
    else:
        data = path.read()
    if len(data) == 0:
        raise NotAnImageError(f"{name} is empty (0 bytes); it is not an image. Check the download or copy.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_PIXELS
            try:
                im = Image.open(io.BytesIO(data))
                im.load()  # decode now: a truncated file fails here, not later
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except UnidentifiedImageError:
        raise NotAnImageError(
            f"{name} is not an image PIL can read ({len(data)} bytes; starts with {data[:8]!r}). "
            f"Pass a JPEG, PNG, WebP, BMP or TIFF photo.") from None
    except Image.DecompressionBombError:
        raise NotAnImageError(f"{name} has more than {MAX_PIXELS} pixels; downscale it first.") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise NotAnImageError(
            f"{name} could not be decoded ({e}); the file is probably truncated or corrupt. "
            f"Re-export or re-download it.") from None
    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(im, np.uint16)
    elif im.mode == "I":
        arr = np.asarray(im, np.int64)
        arr = (np.clip(arr, 0, 65535).astype(np.uint16) if arr.max() > 255
               else arr.astype(np.uint8))
    elif im.mode == "F":
        arr = np.asarray(im, np.float32)
        arr = arr / 255.0 if arr.max() > 1.0 else arr
    elif im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        arr = np.asarray(im.convert("RGBA"))
    else:
        arr = np.asarray(im.convert("RGB"))
    return as_rgb(arr, name)
