"""How much memory a weights file takes once loaded in 16-bit precision, read from its header only.

A safetensors file starts with an 8-byte little-endian header length and a JSON header that names every
tensor's dtype and byte range, so the size of each tensor at 16 bits is known without reading weights:
an fp8 checkpoint (F8_E4M3) doubles when the engine loads it in bf16, an fp32 one halves.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

# Bytes per element of the floating-point dtypes safetensors names. Float tensors are cast to the
# 16-bit compute dtype on load; integer and packed tensors (position ids, bitsandbytes blocks) are
# kept as stored.
FLOAT_ITEMSIZE = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
}

# safetensors refuses headers above 100 MB; a larger length means the file is not safetensors.
MAX_HEADER_BYTES = 100_000_000


def loaded_size(path: Path, keeps_fp8: bool = False, keeps_gguf: bool = False) -> int:
    """Bytes the file's weights take once loaded: at 16 bits (sixteen_bit_size), except fp8 tensors where
    the loader keeps them fp8 (`keeps_fp8`: an fp8 transformer is stored as it is, layerwise cast) and a
    GGUF file, stored as it is where the loader keeps it quantized (`keeps_gguf`: a transformer) and
    dequantized to 16 bits elsewhere (T5)."""
    if path.suffix.lower() == ".gguf" and not keeps_gguf:
        from app.catalog.gguf_header import sixteen_bit_size as gguf_sixteen_bit_size
        from app.catalog.safetensors_header import UnreadableFile

        try:
            return gguf_sixteen_bit_size(path)
        except (UnreadableFile, OSError):
            return sixteen_bit_size(path)
    if not keeps_fp8:
        return sixteen_bit_size(path)
    header = read_safetensors_header(path) if path.suffix.lower() == ".safetensors" else None
    if header is None or any(k == "scaled_fp8" or k.endswith(".scale_weight") for k in header):
        return sixteen_bit_size(path)  # ComfyUI's scaled fp8 is unscaled to 16 bits on load
    return sum(_tensor_bytes_at_16_bit(entry, keep=FP8_DTYPES) for key, entry in header.items()
               if key != "__metadata__")


def sixteen_bit_size(path: Path) -> int:
    """Bytes the file's weights take once loaded at 16 bits; 0 for a missing file.

    Files that are not safetensors, or whose header cannot be read, count as their size on disk:
    GGUF and other quantized formats stay quantized in memory, and a broken file is the catalog's
    business, not the planner's.
    """
    try:
        size_on_disk = path.stat().st_size
    except OSError:
        return 0
    if path.suffix.lower() != ".safetensors":
        return size_on_disk
    header = read_safetensors_header(path)
    if header is None:
        return size_on_disk
    return sum(_tensor_bytes_at_16_bit(entry) for key, entry in header.items() if key != "__metadata__")


def read_safetensors_header(path: Path) -> dict | None:
    """The JSON header of a safetensors file, or None if the file is not one."""
    try:
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                return None
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER_BYTES:
                return None
            raw = handle.read(length)
    except OSError:
        return None
    if len(raw) < length:
        return None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return header if isinstance(header, dict) else None


def first_tensor_dtype(header: dict) -> str | None:
    """The dtype of the first tensor named in the header (headers keep the order they were written in)."""
    for key, entry in header.items():
        if key != "__metadata__" and isinstance(entry, dict):
            return entry.get("dtype")
    return None


FP8_DTYPES = frozenset({"F8_E4M3", "F8_E5M2"})


def _tensor_bytes_at_16_bit(entry: object, keep: frozenset[str] = frozenset()) -> int:
    if not isinstance(entry, dict):
        return 0
    try:
        start, end = entry["data_offsets"]
        stored = int(end) - int(start)
    except (KeyError, TypeError, ValueError):
        return 0
    itemsize = FLOAT_ITEMSIZE.get(entry.get("dtype", ""))
    if itemsize is None or entry.get("dtype") in keep:
        return stored
    return stored * 2 // itemsize
