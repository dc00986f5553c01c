"""Fixtures for the avatar tests: the built-in template head (the real HeadModel) and its motion space."""

import pytest

from vasa3d_jax.head import template_head
from vasa3d_jax.motion_space import MotionSpace


@pytest.fixture(scope="session")
def template():
    return template_head()


@pytest.fixture(scope="session")
def space():
    return MotionSpace.builtin()
