"""Numbers shared across the code base, each with its source (one place for each).

* ``FPS``: motion frames per second, one motion frame per video frame (VASA-1 works at 25 fps;
  ``MotionSpace.fps`` defaults to it).
* ``SAMPLE_RATE``: the audio front-end's rate in Hz (Whisper's 16 kHz mono).
* ``ALPHA_THRESHOLD``: gsplat 1.5.3 ``ALPHA_THRESHOLD``; a splat contributes to a pixel only when
  alpha >= 1/255, and the projection culls Gaussians whose opacity is below it.
* ``MAX_ALPHA``: gsplat 1.5.3 clamps alpha to 0.999 so the transmittance never reaches zero.
* ``TRANSMITTANCE_THRESHOLD``: gsplat 1.5.3 stops compositing a pixel once its transmittance would
  fall to 1e-4 or below (that splat excluded).
"""

FPS = 25  # motion frames per second (VASA-1; MotionSpace.fps)
SAMPLE_RATE = 16_000  # Hz: the audio front-end's rate (Whisper's)
ALPHA_THRESHOLD = 1.0 / 255.0  # gsplat 1.5.3 ALPHA_THRESHOLD: skip fainter contributions
MAX_ALPHA = 0.999  # gsplat 1.5.3 rasterize_to_pixels: alpha clamp (0.99 in later gsplat)
TRANSMITTANCE_THRESHOLD = 1e-4  # gsplat 1.5.3 rasterize_to_pixels: early stop, that splat excluded
