"""The talking avatar as files a web browser (or any engine) plays: the rig, baked per frame.

The format is documented for other engines in ``docs/web_format.md``; this module writes it
(``bake`` + ``write_web``, or ``export_web``), reads it back (``read_web``) and decodes a frame the way
the browser player does (``decode_frame``), so the tests can hold the format against
``GaussianAvatar.apply``.

A frame of the avatar is G''_t = avatar.apply(params, x_t) (avatar.py eqs. (1)-(10)): Gaussians in
the frames of the triangles of the posed head mesh V_t, plus a residual r_t (N, 13) per Gaussian.
The export stores what does not change once (the canonical local Gaussians, their parent triangles,
the mesh's faces and neutral vertices n) and, per frame, the mesh and the residual, compressed:

    (1) V_t = R_t (n + o_t) + c_t            R_t, c_t: the best rigid fit of n to V_t (Kabsch);
                                             o_t: the non-rigid rest, int16 in steps of ``vertex_step``
                                             metres, stored only for the M vertices that ever move
    (2) r_t ~ r_mean + sum_j a_tj B_j        the residual over the clip by its first k principal
                                             components (truncated SVD); k = 0 when it is zero
                                             (e.g. the template avatar)

and the player rebuilds the Gaussians with the binding of avatar/binding.py:

    (3) (R_f, k_f, T_f) = triangle frame of V_t's face f          binding.py eqs. (1)-(6)
    (4) mu = k_f R_f (mu_l + d_mu) + T_f                          eqs. (5), (7)
    (5) q  = q_f (x) q(d_rot) (x) normalize(q_l)                  eqs. (6), (8)
    (6) s  = k_f exp(s_l + d_log_scale)                           eqs. (7), (9)
    (7) c  = c_l + d_color  (SH: DC + d_color / C0)               eq. (8)
    (8) o  = sigmoid(logit_l + d_opacity)                         eq. (9)

Per frame that is 28 + 4 k + 6 M bytes (M <= V), e.g. 28 + 6 x 2924 = 17.6 kB for the template head
when every vertex moves, 440 kB per second of speech at 25 fps, whatever the number of Gaussians;
the frames file is gzipped (133 kB/s for the demo sentence).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import json
import math
import os
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.avatar import binding as bnd
from vasa3d_jax.avatar import deform
from vasa3d_jax.avatar import gaussians as gs
from vasa3d_jax.render.types import Gaussians

FORMAT = "vasa3d-web"
VERSION = 1
VERTEX_STEP = 5e-6  # metres per int16 step of o_t (eq. 1): +-0.16 m of non-rigid motion, error <= 2.5 um
# (triangles of the template mouth are ~1 mm: 10 um steps changed their k_f by ~1%)
RIGID_TOL = 2e-4  # metres: vertices within this of the rigid fit define it (next round)
RIGID_ROUNDS = 4  # refits of the rigid part (converges in 2-3 on the template head)
RIGID_MIN_SHARE = 0.2  # keep the previous fit if fewer than this share of vertices would define it
RESIDUAL_TOL = 0.01  # relative Frobenius error of the rank-k residual (eq. 2)
RESIDUAL_MAX_RANK = 32  # at most this many principal components (4 k bytes per frame)
BAKE_CHUNK = 32  # frames per compiled avatar.apply call (one compilation for any clip length)
PLAYER_FILES = ("index.html", "player.js", "splat.js", "rig.js", "ply.html")  # vasa3d_jax/export/player/
NPM_FILES = {  # npm packages (web/package-lock.json: three 0.187.0, @sparkjsdev/spark 2.2.0) -> lib/
    "three/build/three.module.js": "three.module.js",
    "three/build/three.core.js": "three.core.js",
    "three/examples/jsm/controls/OrbitControls.js": "addons/controls/OrbitControls.js",
    "three/examples/jsm/postprocessing/Pass.js": "addons/postprocessing/Pass.js",  # imported by spark
    "three/LICENSE": "three.LICENSE",
    "@sparkjsdev/spark/dist/spark.module.js": "spark.module.js",  # ply.html: avatar.ply in spark
    "@sparkjsdev/spark/LICENSE": "spark.LICENSE",
}
WEB_ROOT = pathlib.Path(__file__).resolve().parents[2] / "web"  # package.json, package-lock.json


@dataclasses.dataclass(frozen=True)
class WebRig:
    """A baked talking avatar (eqs. 1-2); N active Gaussians, V vertices, F faces, T frames.

    faces (F, 3) uint32; neutral (V, 3) float32 n; moving (M,) uint32 vertex ids of o_t;
    parent (N,) uint32; means_local (N, 3), quats_local (N, 4) unit wxyz, log_scales (N, 3),
    opacity_logits (N,), colors (N, 3) RGB or (N, K, 3) SH: float32 canonical Gaussians;
    residual_mean (N, 13) float32, residual_basis (k, N, 13) float16: eq. 2;
    rigid (T, 7) float32 (R_t as wxyz, c_t); offsets (T, M, 3) int16; coeffs (T, k) float32.
    meta: fps, vertex_step, background, camera, audio, residual_rel_error, ...
    """

    faces: np.ndarray
    neutral: np.ndarray
    moving: np.ndarray
    parent: np.ndarray
    means_local: np.ndarray
    quats_local: np.ndarray
    log_scales: np.ndarray
    opacity_logits: np.ndarray
    colors: np.ndarray
    residual_mean: np.ndarray
    residual_basis: np.ndarray
    rigid: np.ndarray
    offsets: np.ndarray
    coeffs: np.ndarray
    meta: dict

    @property
    def frames(self) -> int:
        return int(self.rigid.shape[0])


STATIC = ("faces", "neutral", "moving", "parent", "means_local", "quats_local", "log_scales",
          "opacity_logits", "colors", "residual_mean", "residual_basis")


# ---- baking ---------------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("model",))
def apply_frames(model, params, x):
    """(V_t, r_t, G''_t) of avatar.py for frames ``x (n, D)``: posed vertices, the raw residual and
    the final Gaussians (what the files must reproduce; the tests compare against it)."""
    (_, g_final), aux = model.apply(params, x)
    return aux["vertices"], aux["residual"], g_final


def kabsch(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation R and translation c minimising sum |R source_i + c - target_i|^2 (Kabsch 1976),
    float64, R a proper rotation (det +1)."""
    s0, t0 = source.mean(0), target.mean(0)
    h = (source - s0).T @ (target - t0)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rot = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return rot, t0 - rot @ s0


def rigid_fit(source: np.ndarray, target: np.ndarray, rounds: int = RIGID_ROUNDS
              ) -> tuple[np.ndarray, np.ndarray]:
    """Kabsch on the vertices that move rigidly: refit on those within RIGID_TOL of the previous fit,
    so that an open jaw does not tilt the fit and leave every vertex with a small non-rigid rest
    (which eq. 1 would then have to store)."""
    keep = np.ones(len(source), bool)
    for _ in range(rounds):
        rot, c = kabsch(source[keep], target[keep])
        err = np.linalg.norm(source @ rot.T + c - target, axis=-1)
        new = err < RIGID_TOL
        if new.sum() < max(3, RIGID_MIN_SHARE * len(source)) or (new == keep).all():
            break
        keep = new
    return rot, c


def _rotmat_to_quat(r: np.ndarray) -> np.ndarray:
    return np.asarray(bnd.rotmat_to_quat(jnp.asarray(r, jnp.float32)), np.float64)


def _quat_to_rotmat(q: np.ndarray) -> np.ndarray:
    return np.asarray(bnd.quat_to_rotmat(jnp.asarray(q, jnp.float32)), np.float64)


def bake(avatar, motion: np.ndarray, *, fps: float | None = None, vertex_step: float = VERTEX_STEP,
         residual_tol: float = RESIDUAL_TOL, residual_max_rank: int = RESIDUAL_MAX_RANK,
         size: int = 512, background=(1.0, 1.0, 1.0)) -> WebRig:
    """Bakes ``avatar`` (avatar.io.Avatar) driven by ``motion (T, D)`` into a ``WebRig`` (eqs. 1-2).

    size / background: the player's default canvas size and background (its front camera is the
    "front" camera path's camera at that size).
    """
    from vasa3d_jax import camera

    motion = np.asarray(motion, np.float32)
    if motion.ndim != 2 or motion.shape[0] == 0:
        raise ValueError(f"motion has shape {motion.shape}; expected (T > 0, D) latents, one row per frame")
    avatar.space.check(motion)
    model, params = avatar.model, avatar.params
    g, b = jax.device_get(params["gaussians"]), jax.device_get(params["binding"])
    live = np.asarray(b.active)
    if not live.any():
        raise ValueError("the avatar has no active Gaussians; nothing to export")

    verts, resid = [], []
    for i in range(0, len(motion), BAKE_CHUNK):
        chunk = motion[i:i + BAKE_CHUNK]
        pad = np.concatenate([chunk, np.repeat(chunk[-1:], BAKE_CHUNK - len(chunk), 0)])
        v, r, _ = apply_frames(model, params, jnp.asarray(pad))
        verts.append(np.asarray(v[:len(chunk)], np.float64))
        resid.append(np.asarray(r[:len(chunk)][:, live], np.float32))
    verts, resid = np.concatenate(verts), np.concatenate(resid)

    # Eq. 1: rigid fit, then the non-rigid rest in steps of vertex_step.
    neutral = np.asarray(model.neutral_vertices(params["shape"]), np.float32)
    rigid = np.zeros((len(motion), 7), np.float32)
    rest = np.zeros(verts.shape, np.float64)
    for t, v in enumerate(verts):
        rot, c = rigid_fit(neutral.astype(np.float64), v)
        q = _rotmat_to_quat(rot).astype(np.float32)
        rigid[t, :4], rigid[t, 4:] = q, c
        rot32 = _quat_to_rotmat(q)  # the rotation the player will use (float32 quaternion)
        rest[t] = (v - rigid[t, 4:].astype(np.float64)) @ rot32 - neutral  # R^T (V - c) - n
    peak = np.abs(rest).max()
    step = max(vertex_step, peak / 32000.0)  # never clips: |o| / step <= 32000 < 32767
    moving = np.nonzero((np.abs(rest) > 0.5 * step).any(axis=(0, 2)))[0].astype(np.uint32)
    offsets = np.round(rest[:, moving] / step).astype(np.int16)

    # Eq. 2: the residual's principal components over the clip.
    flat = resid.reshape(len(motion), -1).astype(np.float64)
    r_mean = flat.mean(0)
    centred = flat - r_mean
    total = np.linalg.norm(flat)
    if total == 0.0:
        k, basis, coeffs, rel_err = 0, np.zeros((0, flat.shape[1])), np.zeros((len(motion), 0)), 0.0
    else:
        u, s, vt = np.linalg.svd(centred, full_matrices=False)
        tail = np.sqrt(np.maximum(np.cumsum((s ** 2)[::-1])[::-1], 0.0))  # error if truncated at j
        errors = np.append(tail, 0.0) / total  # errors[j]: relative error with j components
        k = next((j for j in range(min(residual_max_rank, len(s)) + 1) if errors[j] <= residual_tol),
                 min(residual_max_rank, len(s)))
        basis = vt[:k].astype(np.float16).astype(np.float64)
        coeffs = centred @ basis.T @ np.linalg.pinv(basis @ basis.T) if k else np.zeros((len(motion), 0))
        rel_err = float(np.linalg.norm(centred - coeffs @ basis) / total)
    n = int(live.sum())

    colors = np.asarray(g.colors, np.float32)[live]
    path = camera.CameraPath("front")
    eye = np.asarray(path.pivot) + path.distance * np.array([0.0, 0.0, 1.0])
    meta = {
        "fps": float(fps or avatar.space.fps), "vertex_step": float(step),
        "residual_rank": int(k), "residual_rel_error": rel_err, "sh_degree": None if colors.ndim == 2 else
        int(round(colors.shape[1] ** 0.5)) - 1, "background": [float(c) for c in background],
        "camera": {"eye": eye.tolist(), "target": list(path.pivot), "up": [0.0, 1.0, 0.0],
                   "fov_y_deg": math.degrees(2 * math.atan(0.5 / camera.FOCAL_PER_SIZE)), "size": int(size)},
        "head": avatar.model.head.kind,
    }
    quats = np.asarray(g.quats_local, np.float32)[live]
    return WebRig(
        faces=np.asarray(avatar.model.faces, np.uint32), neutral=neutral, moving=moving,
        parent=np.asarray(b.parent, np.uint32)[live],
        means_local=np.asarray(g.means_local, np.float32)[live],
        quats_local=quats / np.linalg.norm(quats, axis=-1, keepdims=True),
        log_scales=np.asarray(g.log_scales, np.float32)[live],
        opacity_logits=np.asarray(g.opacity_logits, np.float32)[live], colors=colors,
        residual_mean=r_mean.reshape(n, deform.RESIDUAL_DIM).astype(np.float32),
        residual_basis=basis.reshape(k, n, deform.RESIDUAL_DIM).astype(np.float16),
        rigid=rigid, offsets=offsets, coeffs=coeffs.astype(np.float32), meta=meta)


# ---- files ----------------------------------------------------------------------------------------
def frame_bytes(rig: WebRig) -> int:
    """Bytes of one frame record in frames.bin: 7 + k float32, then M x 3 int16, padded to 4 bytes."""
    return 4 * (7 + rig.coeffs.shape[1]) + 4 * math.ceil(6 * len(rig.moving) / 4)


def write_web(rig: WebRig, out_dir: str | os.PathLike, audio: np.ndarray | None = None,
              sample_rate: int = 16000, player: bool = True) -> dict:
    """Writes ``rig.json``, ``rig.bin``, ``frames.bin.gz`` (+ ``audio.wav``, + the player) to ``out_dir``.

    Returns a summary with the sizes (bytes) and the size per second of speech.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arrays, blob, offset = {}, bytearray(), 0
    for name in STATIC:
        a = np.ascontiguousarray(getattr(rig, name))
        arrays[name] = {"offset": offset, "dtype": a.dtype.name, "shape": list(a.shape)}
        data = a.astype(a.dtype.newbyteorder("<")).tobytes()
        blob += data + bytes(-len(data) % 4)  # every array starts on a 4-byte boundary
        offset = len(blob)
    (out / "rig.bin").write_bytes(bytes(blob))

    record = frame_bytes(rig)
    frames = bytearray()
    for t in range(rig.frames):
        head = np.concatenate([rig.rigid[t], rig.coeffs[t]]).astype("<f4").tobytes()
        body = rig.offsets[t].astype("<i2").tobytes()
        frames += head + body + bytes(record - len(head) - len(body))
    # gzip: the int16 offsets of a talking head change smoothly (3.3x smaller for the demo sentence);
    # every browser inflates it natively (DecompressionStream), as do zlib-based engines
    (out / "frames.bin.gz").write_bytes(gzip.compress(bytes(frames), compresslevel=9, mtime=0))

    audio_name = None
    if audio is not None:
        import soundfile as sf

        audio_name = "audio.wav"
        sf.write(out / audio_name, np.clip(np.asarray(audio, np.float32), -1, 1), sample_rate, subtype="PCM_16")
    meta = {"format": FORMAT, "version": VERSION, **rig.meta, "frames": rig.frames,
            "duration_s": rig.frames / rig.meta["fps"], "gaussians": int(len(rig.parent)),
            "vertices": int(len(rig.neutral)), "faces": int(len(rig.faces)), "moving_vertices": int(len(rig.moving)),
            "audio": audio_name, "static": {"file": "rig.bin", "arrays": arrays},
            "frames_file": {"file": "frames.bin.gz", "compression": "gzip", "record_bytes": record}}
    (out / "rig.json").write_text(json.dumps(meta, indent=1))
    if player:
        copy_player(out)
    sizes = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
    per_frame = sizes["frames.bin.gz"] / rig.frames
    return {"folder": str(out), "frames": rig.frames, "gaussians": meta["gaussians"],
            "moving_vertices": meta["moving_vertices"], "residual_rank": rig.meta["residual_rank"],
            "residual_rel_error": round(rig.meta["residual_rel_error"], 5),
            "frame_bytes": record, "rig_kB_per_s": round(per_frame * rig.meta["fps"] / 1e3, 1),
            "rig_raw_kB_per_s": round(record * rig.meta["fps"] / 1e3, 1),
            "audio_kB_per_s": round(sizes["audio.wav"] / meta["duration_s"] / 1e3, 1) if audio_name else 0.0,
            "static_kB": round(sizes["rig.bin"] / 1e3, 1), "sizes": sizes}


def copy_player(out_dir: str | os.PathLike) -> None:
    """Copies the player (index.html + its modules, ply.html) and the npm modules they import (from
    web/node_modules, installed by ``make setup-web`` from the committed lock file) into ``out_dir``: the
    export works offline."""
    out = pathlib.Path(out_dir)
    src = pathlib.Path(__file__).resolve().parent / "player"
    for name in PLAYER_FILES:
        shutil.copyfile(src / name, out / name)
    modules = pathlib.Path(os.environ.get("VASA3D_WEB_MODULES", WEB_ROOT / "node_modules"))
    for rel, dest in NPM_FILES.items():
        if not (modules / rel).is_file():
            raise FileNotFoundError(f"{modules / rel} is missing: install the player's JavaScript with "
                                    f"`make setup-web` (or `cd {WEB_ROOT} && npm ci`; npm comes with Node.js)")
        (out / "lib" / dest).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(modules / rel, out / "lib" / dest)


def read_web(folder: str | os.PathLike) -> WebRig:
    """Reads a folder written by ``write_web`` back into a ``WebRig``."""
    folder = pathlib.Path(folder)
    if not (folder / "rig.json").is_file():
        raise FileNotFoundError(f"{folder / 'rig.json'} not found; write the folder with `vasa3d export`")
    meta = json.loads((folder / "rig.json").read_text())
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"{folder} holds format {meta.get('format')!r} v{meta.get('version')}; "
                         f"this reader reads {FORMAT!r} v{VERSION}")
    blob = (folder / meta["static"]["file"]).read_bytes()
    static = {}
    for name, a in meta["static"]["arrays"].items():
        dt = np.dtype(a["dtype"]).newbyteorder("<")
        count = int(np.prod(a["shape"]))
        static[name] = np.frombuffer(blob, dt, count, a["offset"]).reshape(a["shape"])
    k, m, t = meta["residual_rank"], meta["moving_vertices"], meta["frames"]
    rec = meta["frames_file"]["record_bytes"]
    data = (folder / meta["frames_file"]["file"]).read_bytes()
    if meta["frames_file"].get("compression") == "gzip":
        data = gzip.decompress(data)
    raw = np.frombuffer(data, np.uint8).reshape(t, rec)
    head = raw[:, :4 * (7 + k)].copy().view("<f4")
    offsets = raw[:, 4 * (7 + k):4 * (7 + k) + 6 * m].copy().view("<i2").reshape(t, m, 3)
    keys = {f.name for f in dataclasses.fields(WebRig)} - {"rigid", "offsets", "coeffs", "meta"}
    return WebRig(**{n: static[n] for n in keys}, rigid=head[:, :7], offsets=offsets, coeffs=head[:, 7:],
                  meta=meta)


# ---- decoding (what the player does) --------------------------------------------------------------
def decode_frame(rig: WebRig, t: int) -> Gaussians:
    """Gaussians of frame ``t`` from the files alone (eqs. 1-8), in numpy float32: the reference the
    browser player (player/rig.js) implements line by line."""
    q = rig.rigid[t, :4]
    rot = _quat_to_rotmat(q).astype(np.float32)
    v = rig.neutral.copy()
    v[rig.moving] += rig.offsets[t].astype(np.float32) * np.float32(rig.meta["vertex_step"])
    v = v @ rot.T + rig.rigid[t, 4:]
    r = rig.residual_mean + np.tensordot(rig.coeffs[t], rig.residual_basis.astype(np.float32), axes=1)
    d = {k: np.asarray(a) for k, a in deform.split_residual(r).items()}
    frames = bnd.gather_frames(bnd.triangle_frames(jnp.asarray(v), jnp.asarray(rig.faces.astype(np.int32))),
                               jnp.asarray(rig.parent.astype(np.int32)))
    quats_local = bnd.quat_multiply(bnd.axis_angle_to_quat(jnp.asarray(d["d_rot"])), jnp.asarray(rig.quats_local))
    means, quats, scales = bnd.local_to_world(jnp.asarray(rig.means_local + d["d_mu"]), quats_local,
                                              jnp.asarray(rig.log_scales + d["d_log_scale"]), frames)
    if rig.colors.ndim == 2:
        colors = rig.colors + d["d_color"]
    else:
        colors = rig.colors.copy()
        colors[:, 0] += d["d_color"] / gs.SH_C0
    opac = 1.0 / (1.0 + np.exp(-(rig.opacity_logits + d["d_opacity"])))
    return Gaussians(means=np.asarray(means), quats=np.asarray(quats), scales=np.asarray(scales),
                     opacities=opac.astype(np.float32), colors=colors.astype(np.float32))
