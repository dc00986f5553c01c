"""Avatar files carry their head: avatars made on a modified template head and on FLAME reload
without being told the head, render the same image, and drive ``vasa3d speak --avatar``."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from flame_file import flame_arrays
from vasa3d_jax import cli
from vasa3d_jax.avatar import region_colors
from vasa3d_jax.avatar.io import head_hash, load_avatar, save_avatar
from vasa3d_jax.avatar.render import FrameRenderer
from vasa3d_jax.avatar.template import template_avatar
from vasa3d_jax.camera import CameraPath
from vasa3d_jax.head import load_flame

SIZE = 32


@pytest.fixture(scope="module")
def modified(template):
    """The template head with a wider, flatter face: an identity fitted to somebody else."""
    v = np.asarray(template.v_template) * np.array([1.08, 0.97, 0.92], np.float32)
    head = dataclasses.replace(template, v_template=jnp.asarray(v))
    return template_avatar(head=head)


@pytest.fixture(scope="module")
def flame(tmp_path_factory):
    path = tmp_path_factory.mktemp("flame") / "flame_export.npz"
    np.savez(path, **flame_arrays())
    head = load_flame(path, num_shape=10, num_expression=10)
    return template_avatar(head=head, colors=region_colors(head))


def _image(avatar) -> np.ndarray:
    path = CameraPath.parse("az=20,el=10")
    renderer = FrameRenderer(avatar, SIZE)
    renderer.prepare(None, path, 1)
    x = np.zeros(avatar.space.size, np.float32)
    x[avatar.space.index("AU26")] = 0.8  # the jaw open: the head's rig is used, not only its mesh
    return renderer(x, path.viewmat(0, 1))


@pytest.mark.slow  # four frame programs compile (two heads, original and reloaded models): ~2-4 min
@pytest.mark.parametrize("which", ["modified", "flame"])
def test_avatar_roundtrips_with_its_head(which, request, tmp_path):
    avatar = request.getfixturevalue(which)
    loaded = load_avatar(save_avatar(avatar, tmp_path / which))
    assert loaded.head.kind == avatar.head.kind and head_hash(loaded.head) == head_hash(avatar.head)
    for a, b in zip(jax.tree.leaves(avatar.head), jax.tree.leaves(loaded.head)):
        # bitwise: a round trip (write -> read) is the contract
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert loaded.config == avatar.config and loaded.space == avatar.space
    for a, b in zip(jax.tree.leaves(avatar.params), jax.tree.leaves(loaded.params)):
        # bitwise: a round trip (write -> read) is the contract
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    image = _image(avatar)
    assert np.mean(np.any(image < 0.95, axis=-1)) > 0.02  # the head is in view
    # bitwise: determinism (same inputs, same program) is the contract
    np.testing.assert_array_equal(_image(loaded), image)


def test_template_avatar_reloads_onto_the_shared_template(template, tmp_path):
    loaded = load_avatar(save_avatar(template_avatar(), tmp_path / "t"))
    assert loaded.head is template  # compiled programs of the template are reused


def test_old_damaged_and_missing_files_are_explained(modified, tmp_path):
    path = save_avatar(modified, tmp_path / "a")
    with np.load(path) as z:
        arrays = dict(z)
    meta = json.loads(str(arrays["__meta__"]))
    old = {k: v for k, v in arrays.items() if not k.startswith("head/")}
    old["__meta__"] = np.asarray(json.dumps({**meta, "format": 1, "head": "template"}))
    np.savez(tmp_path / "old.npz", **old)
    with pytest.raises(ValueError, match="older format"):
        load_avatar(tmp_path / "old.npz")
    arrays["head/v_template"] = arrays["head/v_template"] + 1e-3
    np.savez(tmp_path / "edited.npz", **arrays)
    with pytest.raises(ValueError, match="checksum"):
        load_avatar(tmp_path / "edited.npz")
    with pytest.raises(FileNotFoundError, match="save_avatar"):
        load_avatar(tmp_path / "nope.npz")


@pytest.mark.parametrize("which", ["modified", "flame"])
def test_speak_with_an_avatar_file(which, request, tmp_path, monkeypatch, capsys):
    from test_session import tiny_generator

    import vasa3d_jax.motion as motion

    monkeypatch.setattr(motion, "load_default_model", tiny_generator)  # no Whisper: log-mel features
    avatar_path = save_avatar(request.getfixturevalue(which), tmp_path / "me")
    rate = 16000
    t = np.arange(int(0.2 * rate)) / rate
    sf.write(tmp_path / "hi.wav", (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), rate)
    out = tmp_path / "out"
    assert cli.main(["speak", "--audio", str(tmp_path / "hi.wav"), "--out", str(out), "--avatar",
                     str(avatar_path), "--size", str(SIZE)]) == 0, capsys.readouterr().err
    summary = json.loads(next(line for line in capsys.readouterr().out.splitlines() if line.startswith("{")))
    assert summary["frames"] == 5 and (out / "talking.mp4").is_file()
