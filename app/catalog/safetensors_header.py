"""Read the header of a .safetensors file, never its tensors.

The format is an 8-byte little-endian header length, a JSON header, then the tensor bytes. The
header alone says every tensor's name, dtype and shape, which is all the catalog needs, and checking
its offsets against the file size catches the commonest damage: a download cut short.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import NamedTuple

from app.errors import UnreadableModel

# Real headers are a few hundred KB even for 1,000-tensor files; more than this is not a header.
MAX_HEADER_BYTES = 100 * 1024 * 1024

DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}

TensorInfo = tuple[str, tuple[int, ...]]  # (dtype, shape)


class UnreadableFile(UnreadableModel):
    """A model file that cannot be used; `reason` says why in words a user can act on."""

    def __init__(self, reason: str, path: Path | None = None):
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path


class Header(NamedTuple):
    """What a safetensors header says. Unpacks as `tensors, metadata = read_header(path)`."""

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]


def read_header(path: Path) -> Header:
    """Read and check the header of `path`; raise UnreadableFile with the reason when it is bad."""
    try:
        with open(path, "rb") as f:
            size = _file_size(f)
            if size < 8:
                raise UnreadableFile(f"not a safetensors file: only {size:,} bytes", path)
            (length,) = struct.unpack("<Q", f.read(8))
            if length > MAX_HEADER_BYTES:
                raise UnreadableFile(
                    f"not a safetensors file: its header length field reads {length:,} bytes", path
                )
            if length > size - 8:
                raise UnreadableFile(
                    f"truncated: header says it is {length:,} bytes long, file has {size - 8:,}", path
                )
            raw = f.read(length)
    except OSError as e:
        raise UnreadableFile(f"cannot read the file: {e.strerror or e}", path) from e
    header = _parse_json(raw, path)
    tensors, data_end = _check_tensors(header, path)
    available = size - 8 - length
    if data_end > available:
        raise UnreadableFile(
            f"truncated: header says {data_end:,} bytes of tensors, file has {available:,}", path
        )
    return Header(tensors, _metadata(header.get("__metadata__"), path))


def _file_size(f) -> int:
    f.seek(0, 2)
    size = f.tell()
    f.seek(0)
    return size


def _parse_json(raw: bytes, path: Path) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UnreadableFile("not a safetensors file: its header is not text", path) from e
    except json.JSONDecodeError as e:
        raise UnreadableFile(f"corrupt header: invalid JSON at byte {e.pos + 8:,} ({e.msg})", path) from e
    if not isinstance(header, dict):
        raise UnreadableFile("corrupt header: it is not a JSON object", path)
    return header


def _check_tensors(header: dict, path: Path) -> tuple[dict[str, TensorInfo], int]:
    """Return {name: (dtype, shape)} and the end of the last tensor's bytes."""
    tensors: dict[str, TensorInfo] = {}
    data_end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
            ok = (
                isinstance(dtype, str)
                and all(isinstance(d, int) and d >= 0 for d in shape)
                and isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end
            )
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise UnreadableFile(f"corrupt header: bad entry for tensor {name!r}", path)
        itemsize = DTYPE_BYTES.get(dtype)
        if itemsize is not None and end - begin != math.prod(shape) * itemsize:
            raise UnreadableFile(
                f"corrupt header: tensor {name!r} has {end - begin:,} bytes for shape {list(shape)} {dtype}",
                path,
            )
        tensors[name] = (dtype, tuple(shape))
        data_end = max(data_end, end)
    return tensors, data_end


def _metadata(raw: object, path: Path) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UnreadableFile("corrupt header: __metadata__ is not a JSON object", path)
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
