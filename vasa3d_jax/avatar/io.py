"""Avatar files: a driven Gaussian head and everything needed to rebuild it, in one ``.npz``.

    avatar = Avatar(fit.avatar, fit.params)          # or template_avatar(), or a portrait's avatar
    save_avatar(avatar, "me.npz")
    avatar = load_avatar("me.npz")                   # no head argument: the file carries its head

The file holds

* every parameter array of ``GaussianAvatar`` by its pytree path (``jax.tree_util.keystr``),
* every array of the ``HeadModel`` it was made on under ``head/<field>`` (the template, FLAME, or a
  modified / identity-fitted head), so an avatar reloads onto exactly its own mesh, rig and bases,
* ``__meta__``: JSON with the format version, the avatar configuration, the motion space
  (``MotionSpace.to_json``), the head's static fields and the SHA-256 of its arrays, which
  ``load_avatar`` checks. A head whose arrays equal the built-in template's is rebuilt as
  ``template_head()`` itself, so template avatars share its compiled programs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from vasa3d_jax.avatar.avatar import AvatarConfig, GaussianAvatar
from vasa3d_jax.head import HeadModel, template_head
from vasa3d_jax.motion_space import MotionSpace

FORMAT = 2  # 1: head kind only (the head was not stored); 2: the head's arrays are in the file
_HEAD_PREFIX = "head/"
_STATIC_HEAD_FIELDS = ("region_names", "kind")


@dataclasses.dataclass(frozen=True)
class Avatar:
    """A Gaussian head ready to drive: the model (static) and its full parameters (with the binding)."""

    model: GaussianAvatar  # head model, motion space, AvatarConfig
    params: dict  # GaussianAvatar parameters, "binding" included

    @property
    def space(self) -> MotionSpace:
        return self.model.space

    @property
    def head(self) -> HeadModel:
        return self.model.head

    @property
    def config(self) -> AvatarConfig:
        return self.model.config


def head_arrays(head: HeadModel) -> dict[str, np.ndarray]:
    """The head's array fields by name (absent optional fields left out), as numpy."""
    out = {}
    for f in dataclasses.fields(head):
        if f.name in _STATIC_HEAD_FIELDS:
            continue
        value = getattr(head, f.name)
        if value is not None:
            out[f.name] = np.asarray(jax.device_get(value))
    return out


def head_hash(head: HeadModel) -> str:
    """SHA-256 over the head's static fields and arrays (name, dtype, shape, bytes), in field order."""
    h = hashlib.sha256(json.dumps([head.kind, list(head.region_names)]).encode())
    for name, a in head_arrays(head).items():
        a = np.ascontiguousarray(a)
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_avatar(avatar: Avatar, path: str | os.PathLike) -> pathlib.Path:
    """Writes ``path`` (.npz): the parameters, the head's arrays and the metadata (module docstring)."""
    path = pathlib.Path(path).with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    leaves, _ = jax.tree_util.tree_flatten_with_path(jax.device_get(avatar.params))
    arrays = {jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}
    head = avatar.model.head
    arrays.update({_HEAD_PREFIX + k: v for k, v in head_arrays(head).items()})
    meta = {"format": FORMAT, "config": dataclasses.asdict(avatar.model.config), "space": avatar.space.to_json(),
            "head": {"kind": head.kind, "region_names": list(head.region_names), "sha256": head_hash(head)}}
    np.savez(path, __meta__=np.asarray(json.dumps(meta)), **arrays)
    return path


def load_avatar(path: str | os.PathLike) -> Avatar:
    """Reads an avatar written by ``save_avatar``, onto the head stored in the file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"avatar file {str(path)!r} not found; write one with "
                                "vasa3d_jax.avatar.io.save_avatar, or leave --avatar out for the template head")
    with np.load(path, allow_pickle=False) as z:
        if "__meta__" not in z.files:
            raise ValueError(f"{path} is not an avatar file written by vasa3d_jax.avatar.io.save_avatar")
        meta = json.loads(str(z["__meta__"]))
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    if meta.get("format", 1) < FORMAT or not isinstance(meta.get("head"), dict):
        raise ValueError(f"{path} is an avatar file of an older format that stored the head's kind "
                         f"({meta.get('head')!r}) but not the head itself, so it cannot be reloaded "
                         "faithfully; fit or build the avatar again and write it with save_avatar")
    head = _load_head(path, meta["head"], {k[len(_HEAD_PREFIX):]: v for k, v in arrays.items()
                                           if k.startswith(_HEAD_PREFIX)})
    config = AvatarConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()})
    model = GaussianAvatar(head, MotionSpace.from_json(meta["space"]), config)
    abstract = jax.eval_shape(model.init, jax.random.key(0))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    missing = [jax.tree_util.keystr(k) for k, _ in leaves if jax.tree_util.keystr(k) not in arrays]
    if missing:
        raise ValueError(f"{path} lacks the parameters {missing[:5]}; was it written for another avatar version?")
    # Densification grows the Gaussian capacity, so shapes come from the file, not from a fresh init.
    params = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(arrays[jax.tree_util.keystr(k)]) for k, _ in leaves])
    return Avatar(model, params)


def _load_head(path: pathlib.Path, meta: dict, arrays: dict[str, np.ndarray]) -> HeadModel:
    fields = {f.name: None for f in dataclasses.fields(HeadModel) if f.name not in _STATIC_HEAD_FIELDS}
    unknown = set(arrays) - set(fields)
    if unknown:
        raise ValueError(f"{path} stores head fields {sorted(unknown)} this version does not know")
    fields.update({k: jnp.asarray(v) for k, v in arrays.items()})
    head = HeadModel(**fields, region_names=tuple(meta["region_names"]), kind=meta["kind"])
    digest = head_hash(head)
    if digest != meta["sha256"]:
        raise ValueError(f"{path}: the stored head does not match its checksum (file damaged or edited); "
                         "write the avatar again with save_avatar")
    if meta["kind"] == "template" and digest == head_hash(template_head()):
        return template_head()  # the shared instance: its compiled programs are reused
    return head
