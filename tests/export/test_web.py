"""The web format: what the files say (decoded as the browser player decodes them) is the avatar."""

import dataclasses
import gzip
import pathlib
import shutil
import subprocess
import urllib.request

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa3d_jax.export import bake, decode_frame, export_web, read_web, write_web
from vasa3d_jax.export import web
from vasa3d_jax.export.web import BAKE_CHUNK, apply_frames, frame_bytes
from vasa3d_jax.render.projection import quat_scale_to_covar


@jax.jit
def _noisy(tree, key):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten([a + 0.03 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])


@pytest.fixture(scope="module")
def noisy(avatar):
    """The template avatar with a non-zero residual deformation (its residual networks output zero)."""
    params = {**avatar.params, "d_exp": _noisy(avatar.params["d_exp"], jax.random.key(1)),
              "d_pose": _noisy(avatar.params["d_pose"], jax.random.key(2))}
    return dataclasses.replace(avatar, params=params)


@pytest.fixture(scope="module")
def noisy_rig(noisy, motion):
    return bake(noisy, motion)


def test_baked_rig_decodes_to_the_avatar(noisy, noisy_rig, motion, frames, tmp_path):
    params, rig = noisy.params, noisy_rig
    assert 0 < rig.meta["residual_rank"] <= len(motion) and rig.meta["residual_rel_error"] < 0.01
    summary = write_web(rig, tmp_path, player=False)
    assert summary["rig_raw_kB_per_s"] == pytest.approx(frame_bytes(rig) * 25 / 1e3, abs=0.05)
    assert summary["sizes"]["frames.bin.gz"] < len(motion) * frame_bytes(rig)
    back = read_web(tmp_path)
    for name in ("faces", "parent", "means_local", "colors", "offsets", "rigid", "coeffs", "residual_basis"):
        # bitwise: a round trip (write -> read) is the contract
        np.testing.assert_array_equal(getattr(back, name), getattr(rig, name))

    live = np.asarray(params["binding"].active)
    pad = np.concatenate([motion, np.repeat(motion[-1:], BAKE_CHUNK - len(motion), 0)])
    _, _, ref = apply_frames(noisy.model, params, jnp.asarray(pad))  # bake's own compiled program
    ref = jax.tree.map(lambda a: np.asarray(a)[:, live], ref)
    assert np.abs(ref.colors - np.asarray(params["gaussians"].colors)[live]).max() > 1e-3  # residual acts
    for t in frames.values():
        g = decode_frame(back, t)
        # vertex_step / 2 = 2.5 um of vertex quantisation, moved through the triangle frames, plus the
        # rank-k residual's error
        np.testing.assert_allclose(g.means, ref.means[t], atol=2e-5)
        np.testing.assert_allclose(g.scales, ref.scales[t], rtol=5e-3, atol=1e-6)
        np.testing.assert_allclose(g.opacities, ref.opacities[t], atol=1e-3)
        np.testing.assert_allclose(g.colors, ref.colors[t], atol=1e-3)
        dots = np.abs(np.sum(g.quats * ref.quats[t], -1)) / np.linalg.norm(ref.quats[t], axis=-1)
        assert dots.min() > 1 - 1e-4


def test_template_rig_has_no_residual_and_its_size(avatar, motion, tmp_path):
    rig = bake(avatar, motion)
    assert rig.meta["residual_rank"] == 0 and rig.residual_basis.shape[0] == 0
    assert not rig.residual_mean.any()
    # The neutral frames are rigid: no vertex offset at all.
    assert not rig.offsets[0].any()
    assert 0 < len(rig.moving) <= len(rig.neutral)
    assert frame_bytes(rig) == 28 + 4 * int(np.ceil(6 * len(rig.moving) / 4))
    summary = write_web(rig, tmp_path, audio=np.zeros(16000, np.float32), player=True)
    assert summary["rig_kB_per_s"] == pytest.approx(summary["sizes"]["frames.bin.gz"] / len(motion) * 25 / 1e3, abs=0.05)
    assert {"index.html", "player.js", "rig.js", "splat.js", "audio.wav"} <= set(summary["sizes"])
    assert (tmp_path / "lib" / "three.module.js").is_file()
    assert (tmp_path / "lib" / "addons" / "controls" / "OrbitControls.js").is_file()
    assert "cdn" not in (tmp_path / "index.html").read_text().lower()


def test_bad_inputs_say_what_to_do(avatar, tmp_path):
    with pytest.raises(ValueError, match="motion .* or audio"):
        export_web(avatar, tmp_path)
    with pytest.raises(ValueError, match="expected \\(T > 0, D\\)"):
        bake(avatar, np.zeros((0, avatar.space.size)))
    with pytest.raises(FileNotFoundError, match="vasa3d export"):
        read_web(tmp_path)


NODE_DECODE = """
import { readFileSync, writeFileSync } from 'node:fs';
import { parseRig } from './rig.mjs';
const dir = process.argv[2], t = Number(process.argv[3]);
const buf = (f) => { const b = readFileSync(dir + '/' + f); return b.buffer.slice(b.byteOffset, b.byteOffset + b.length); };
const meta = JSON.parse(readFileSync(dir + '/rig.json', 'utf8'));
const rig = parseRig(meta, buf('rig.bin'), buf('frames.bin'));  // inflated by the test
rig.update(t, [0, 0, 1]);
writeFileSync(dir + '/js.bin', Buffer.concat([rig.means, rig.covs, rig.rgba].map((a) => Buffer.from(a.buffer))));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on PATH (any Node.js: make setup-web)")
def test_player_decoder_matches_the_reference(noisy_rig, frames, tmp_path):
    """The player's rig.js (run by node) rebuilds the same Gaussians as decode_frame, residual included."""
    write_web(noisy_rig, tmp_path, player=False)
    shutil.copyfile(pathlib.Path(web.__file__).parent / "player" / "rig.js", tmp_path / "rig.mjs")
    (tmp_path / "decode.mjs").write_text(NODE_DECODE)
    (tmp_path / "frames.bin").write_bytes(gzip.decompress((tmp_path / "frames.bin.gz").read_bytes()))
    back = read_web(tmp_path)
    n = len(back.parent)
    for t in (frames["closed"], frames["turned"]):
        subprocess.run(["node", str(tmp_path / "decode.mjs"), str(tmp_path), str(t)], check=True, timeout=60)
        js = np.fromfile(tmp_path / "js.bin", np.float32)
        means, covs, rgba = js[:3 * n].reshape(n, 3), js[3 * n:9 * n].reshape(n, 6), js[9 * n:].reshape(n, 4)
        g = decode_frame(back, t)
        np.testing.assert_allclose(means, g.means, atol=1e-6)
        cov = np.asarray(quat_scale_to_covar(jnp.asarray(g.quats), jnp.asarray(g.scales))).reshape(n, 9)
        np.testing.assert_allclose(covs, cov[:, [0, 1, 2, 4, 5, 8]], rtol=1e-4, atol=1e-10)  # entries ~1e-4 m^2
        np.testing.assert_allclose(rgba[:, :3], g.colors, atol=1e-5)
        np.testing.assert_allclose(rgba[:, 3], g.opacities, atol=1e-6)


def test_cli_and_server(tmp_path):
    from vasa3d_jax.cli import main
    from vasa3d_jax.export.serve import serve

    assert main(["export", "--out", str(tmp_path / "x")]) == 2  # neither --audio nor --motion
    with pytest.raises(FileNotFoundError, match="vasa3d export"):
        serve(tmp_path, port=0, background=True)
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "player.js").write_text("export {};")
    url, server = serve(tmp_path, port=0, background=True)
    try:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "player.js") as r:
            assert r.headers["Content-Type"].startswith("text/javascript")  # ES modules need a JS type
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on PATH (any Node.js: make setup-web)")
@pytest.mark.parametrize("degree", [1, 3])
def test_player_sh_colours_match_the_renderer(degree, tmp_path):
    """rig.js's view-dependent colour (SH + d_color, clamped) equals render/sh.py's, on a hand-made rig."""
    from vasa3d_jax.render.sh import sh_to_color

    rng = np.random.default_rng(degree)
    n, k = 40, (degree + 1) ** 2
    tri = np.array([[0, 0, 0], [0.02, 0, 0], [0, 0.02, 0.005]], np.float32)
    rig = web.WebRig(
        faces=np.array([[0, 1, 2]], np.uint32), neutral=tri, moving=np.zeros(0, np.uint32),
        parent=np.zeros(n, np.uint32), means_local=rng.normal(size=(n, 3)).astype(np.float32),
        quats_local=np.tile(np.float32([1, 0, 0, 0]), (n, 1)), log_scales=np.full((n, 3), -1, np.float32),
        opacity_logits=np.zeros(n, np.float32), colors=rng.normal(0, 0.5, (n, k, 3)).astype(np.float32),
        residual_mean=np.concatenate([np.zeros((n, 9)), rng.normal(0, 0.1, (n, 3)), np.zeros((n, 1))], 1
                                     ).astype(np.float32),
        residual_basis=np.zeros((0, n, 13), np.float16), rigid=np.float32([[1, 0, 0, 0, 0, 0, 0]]),
        offsets=np.zeros((1, 0, 3), np.int16), coeffs=np.zeros((1, 0), np.float32),
        meta={"fps": 25.0, "vertex_step": 5e-6, "residual_rank": 0, "residual_rel_error": 0.0, "sh_degree": degree,
              "background": [1.0, 1.0, 1.0], "camera": {}, "head": "test"})
    write_web(rig, tmp_path, player=False)
    shutil.copyfile(pathlib.Path(web.__file__).parent / "player" / "rig.js", tmp_path / "rig.mjs")
    (tmp_path / "decode.mjs").write_text(NODE_DECODE.replace("[0, 0, 1]", "[0.1, -0.2, 0.5]"))
    (tmp_path / "frames.bin").write_bytes(gzip.decompress((tmp_path / "frames.bin.gz").read_bytes()))
    subprocess.run(["node", str(tmp_path / "decode.mjs"), str(tmp_path), "0"], check=True, timeout=60)
    js = np.fromfile(tmp_path / "js.bin", np.float32)
    rgba = js[9 * n:].reshape(n, 4)
    g = decode_frame(read_web(tmp_path), 0)  # SH with d_color / C0 folded into the DC term
    want = np.asarray(sh_to_color(jnp.asarray(g.colors), jnp.asarray(g.means), jnp.asarray([0.1, -0.2, 0.5])))
    assert (want == 0).any() and (want > 0).any()  # both sides of the clamp are exercised
    np.testing.assert_allclose(rgba[:, :3], want, atol=2e-5)
