"""Face analysis: landmarks from images (MediaPipe's networks in Flax) and the motion encoder."""

from vasa3d_jax.face.encode import MotionFit, encode_motion, head_with_identity

__all__ = ["MotionFit", "encode_motion", "head_with_identity"]
