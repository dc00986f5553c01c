"""Shared tiny motion models and clips (compiled once per session)."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from synthetic_clips import make_clips  # noqa: E402

from vasa3d_jax.motion.dit import DiTConfig  # noqa: E402
from vasa3d_jax.motion.train import TrainConfig, train  # noqa: E402

FEATURES = 16
TINY = DiTConfig(feature_size=FEATURES, window=20, context=4, num_layers=2, width=64, num_heads=4,
                 audio_to_motion_tokens=True)


@pytest.fixture(scope="session")
def tiny_clips():
    return make_clips(12, 90, FEATURES, seed=0)


TINY_TRAIN = TrainConfig(steps=300, batch_size=16, learning_rate=2e-3, warmup_steps=20, log_every=10,
                         save_every=1000)


@pytest.fixture(scope="session")
def tiny_run(tiny_clips, tmp_path_factory):
    """A tiny generator trained briefly on the tiny clips (single device): ``(generator, workdir)``."""
    import jax

    workdir = tmp_path_factory.mktemp("tiny_gen")
    gen, _ = train(tiny_clips, workdir, TINY_TRAIN, TINY, feature_encoder="test", devices=jax.devices()[:1],
                   progress=False)
    return gen, workdir


@pytest.fixture(scope="session")
def tiny_generator(tiny_run):
    return tiny_run[0]
