"""Shared fixtures of the export tests: the template avatar and a short motion clip that closes, then
opens the mouth, then turns the head (frames: CLOSED, OPEN, TURNED)."""

import numpy as np
import pytest

T = 12
CLOSED, OPEN, TURNED = 1, 6, 10


@pytest.fixture(scope="session")
def avatar():
    from vasa3d_jax.avatar.template import template_avatar

    return template_avatar()


@pytest.fixture(scope="session")
def frames():
    """Frame indices of the clip: closed mouth, open mouth (head frontal), open and turned."""
    return {"closed": CLOSED, "open": OPEN, "turned": TURNED}


def channel(space, name: str) -> int:
    return [c.name for c in (*space.dyn, *space.pose)].index(name)


@pytest.fixture(scope="session")
def motion(avatar):
    """(T, D): neutral until frame 3, the jaw open (AU26 = 1) and smiling a little from frame 5,
    the head turned 0.25 rad to its left and 1 cm up from frame 9."""
    sp = avatar.space
    m = np.zeros((T, sp.size), np.float32)
    m[:, channel(sp, "AU26")] = np.clip((np.arange(T) - 3) / 2, 0, 1)
    m[:, channel(sp, "AU12")] = 0.3 * np.clip((np.arange(T) - 3) / 2, 0, 1)
    m[9:, channel(sp, "rot_y")] = 0.25
    m[9:, channel(sp, "ty")] = 0.01
    return m
