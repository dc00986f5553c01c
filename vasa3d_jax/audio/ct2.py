"""A reader for CTranslate2's ``model.bin``: the spec header, every variable, and the aliases.

The layout below is how CTranslate2 4.x writes a model (``ctranslate2/specs/model_spec.py``,
``ModelSpec._serialize``) and reads it back (``src/models/model.cc``, ``Model::load``). All integers
are little-endian; a *string* is a uint16 byte count (including a trailing NUL) followed by the
UTF-8 bytes and the NUL.

    uint32  binary_version                      (CTranslate2 4.x writes 6; >= 2 has a spec name)
    string  spec_name                           (e.g. "WhisperSpec")
    uint32  spec_revision
    uint32  num_variables
    num_variables times:
        string  name                            (e.g. "encoder/conv1/weight")
        uint8   rank
        uint32  dims[rank]
        uint8   dtype_id                        (binary_version >= 4; see ``DTYPES``)
        uint32  num_bytes
        bytes   data[num_bytes]                 (C order)
    uint32  num_aliases                         (binary_version >= 3)
    num_aliases times:
        string  alias
        string  variable_name

This module reads binary versions 4 to 6 (the ones with an explicit dtype id); older files are
rejected with a message that says how to re-convert them. Scalars (rank 0) hold spec attributes,
for example ``encoder/num_heads`` as int16.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import struct
from collections.abc import Mapping

import ml_dtypes
import numpy as np

# ctranslate2/specs/model_spec.py, _dtype_to_type_id: "Order should match the DataType enum in
# include/ctranslate2/types.h".
DTYPES: tuple[np.dtype, ...] = (
    np.dtype(np.float32),
    np.dtype(np.int8),
    np.dtype(np.int16),
    np.dtype(np.int32),
    np.dtype(np.float16),
    np.dtype(ml_dtypes.bfloat16),
)
# Versions whose variable records carry a dtype id (model.cc: `if (binary_version >= 4)`); 6 is
# CURRENT_BINARY_VERSION in ctranslate2 4.x (model_spec.py).
SUPPORTED_BINARY_VERSIONS = (4, 5, 6)


@dataclasses.dataclass(frozen=True)
class Ct2Model:
    """The contents of one CTranslate2 ``model.bin``.

    Attributes:
      binary_version: the file format version.
      spec_name: the model specification, e.g. ``"WhisperSpec"``.
      spec_revision: the specification's revision number.
      variables: name -> array with the stored shape and dtype (read-only views of the file).
      aliases: alias name -> name of the variable it shares (e.g. tied embeddings).
    """

    binary_version: int
    spec_name: str
    spec_revision: int
    variables: Mapping[str, np.ndarray]
    aliases: Mapping[str, str]

    def __getitem__(self, name: str) -> np.ndarray:
        """The variable called ``name``, following an alias if ``name`` is one."""
        target = self.aliases.get(name, name)
        if target not in self.variables:
            raise KeyError(f"{name!r} is neither a variable nor an alias in this {self.spec_name} model")
        return self.variables[target]

    def __contains__(self, name: object) -> bool:
        return name in self.variables or name in self.aliases

    def names(self, prefix: str = "") -> list[str]:
        """Variable and alias names that start with ``prefix``, sorted."""
        return sorted(n for n in (*self.variables, *self.aliases) if n.startswith(prefix))


class _Cursor:
    """Sequential little-endian reads from a bytes buffer, with errors that say where it broke."""

    def __init__(self, buffer: bytes, path: pathlib.Path):
        self.buffer = buffer
        self.offset = 0
        self.path = path

    def take(self, n: int, what: str) -> memoryview:
        end = self.offset + n
        if end > len(self.buffer):
            raise ValueError(
                f"{self.path}: truncated while reading {what} (needs bytes {self.offset}..{end}, the "
                f"file has {len(self.buffer)}). The file is incomplete or not a CTranslate2 model; "
                "re-install the package that ships it or re-run the CTranslate2 converter."
            )
        view = memoryview(self.buffer)[self.offset : end]
        self.offset = end
        return view

    def unpack(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        n = self.unpack("H", f"the length of {what}")
        raw = bytes(self.take(n, what))
        if n == 0 or raw[-1] != 0:
            raise ValueError(
                f"{self.path}: {what} at byte {self.offset - n} is not NUL-terminated; not a CTranslate2 model"
            )
        return raw[:-1].decode("utf-8")


def read_ct2_model(path: str | os.PathLike) -> Ct2Model:
    """Parses a CTranslate2 ``model.bin`` (or the folder that holds one).

    Args:
      path: the ``model.bin`` file, or the model folder containing it.

    Returns:
      a ``Ct2Model`` whose arrays are read-only views of the file's bytes.

    Raises:
      FileNotFoundError: no such file.
      ValueError: the file is truncated, has trailing bytes, or is of an unsupported version.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise FileNotFoundError(f"no CTranslate2 model file at {path}")
    cur = _Cursor(path.read_bytes(), path)

    version = cur.unpack("I", "the binary version")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise ValueError(
            f"{path}: CTranslate2 binary version {version} is not supported (this reader handles "
            f"{SUPPORTED_BINARY_VERSIONS}). Re-convert the model with ctranslate2 >= 3 "
            "(for Whisper: `ct2-transformers-converter --model openai/whisper-tiny.en "
            "--quantization float16`)."
        )
    spec_name = cur.string("the spec name")
    spec_revision = cur.unpack("I", "the spec revision")

    variables: dict[str, np.ndarray] = {}
    for i in range(cur.unpack("I", "the variable count")):
        name = cur.string(f"the name of variable {i}")
        rank = cur.unpack("B", f"the rank of {name}")
        shape = tuple(cur.unpack("I", f"dimension {d} of {name}") for d in range(rank))
        type_id = cur.unpack("B", f"the dtype of {name}")
        if type_id >= len(DTYPES):
            raise ValueError(
                f"{path}: variable {name!r} has unknown dtype id {type_id} (known: 0..{len(DTYPES) - 1})"
            )
        dtype = DTYPES[type_id]
        num_bytes = cur.unpack("I", f"the byte count of {name}")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if num_bytes != expected:
            raise ValueError(
                f"{path}: variable {name!r} of shape {shape} and dtype {dtype} should hold {expected} "
                f"bytes, the file says {num_bytes}"
            )
        data = cur.take(num_bytes, f"the data of {name}")
        variables[name] = np.frombuffer(data, dtype=dtype).reshape(shape)

    aliases: dict[str, str] = {}
    for i in range(cur.unpack("I", "the alias count")):
        alias = cur.string(f"alias {i}")
        target = cur.string(f"the target of alias {alias!r}")
        if target not in variables:
            raise ValueError(f"{path}: alias {alias!r} points to {target!r}, which is not a variable in the file")
        aliases[alias] = target

    if cur.offset != len(cur.buffer):
        raise ValueError(
            f"{path}: {len(cur.buffer) - cur.offset} unexpected bytes after the aliases; "
            f"not a CTranslate2 model of version {version}"
        )
    return Ct2Model(version, spec_name, spec_revision, variables, aliases)
