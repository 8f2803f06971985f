"""A1111's model hash: the first 10 hex digits of the weights file's sha256, computed once and cached.

The cache is a JSON file keyed by path, size and modification time, so a replaced file is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashCache:
    def __init__(self, cache_file: Path):
        self.cache_file = Path(cache_file)
        self._lock = threading.Lock()

    def sha256(self, path: Path) -> str:
        return self._cached(path, "", sha256_of)

    def partial_hash(self, path: Path) -> str:
        """A1111's old short model hash (8 hex digits), which sd-webui-controlnet lists models by."""
        return self._cached(path, "partial|", partial_hash)

    def addnet_hash(self, path: Path) -> str:
        """A LoRA's "Lora hashes" value (12 hex digits), computed once per file version."""
        return self._cached(path, "addnet|", addnet_hash)[:12]

    def _cached(self, path: Path, kind: str, compute) -> str:
        path = Path(path).resolve()
        st = path.stat()
        key = f"{kind}{path}|{st.st_size}|{int(st.st_mtime)}"
        with self._lock:
            cache = self._read()
            if key in cache:
                return cache[key]
        value = compute(path)
        with self._lock:
            cache = self._read()
            cache[key] = value
            try:
                self._write(cache)
            except OSError:  # a read-only models folder: the hash is just computed again next time
                pass
        return value

    def model_hash(self, weight_files: list[Path]) -> str:
        """Short hash of a model: its file's, or for several files (shards) the hash of their hashes."""
        files = sorted(Path(p) for p in weight_files)
        if not files:
            return ""
        if len(files) == 1:
            return self.sha256(files[0])[:10]
        combined = hashlib.sha256("".join(self.sha256(f) for f in files).encode()).hexdigest()
        return combined[:10]

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.cache_file.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _write(self, cache: dict[str, str]) -> None:
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        # a unique temp name: two processes sharing a models folder never write into one temp file
        descriptor, name = tempfile.mkstemp(prefix=f".{self.cache_file.name}.", suffix=".tmp",
                                            dir=self.cache_file.parent)
        try:
            with os.fdopen(descriptor, "w") as fh:
                fh.write(json.dumps(cache, indent=1))
            os.replace(name, self.cache_file)
        except BaseException:
            Path(name).unlink(missing_ok=True)
            raise


def weight_files_of(entry) -> list[Path]:
    """The files whose hash identifies a catalog entry: the transformer's weights (or the checkpoint)."""
    parts = entry.parts or {}
    for key in ("checkpoint", "transformer"):
        if key in parts and Path(parts[key]).is_file():
            return [Path(parts[key])]
    folder = Path(parts.get("folder", entry.path))
    if folder.is_dir():
        return sorted((folder / "transformer").glob("*.safetensors"))
    return [folder] if folder.is_file() else []


PARTIAL_HASH_OFFSET, PARTIAL_HASH_BYTES = 0x100000, 0x10000


def partial_hash(path: Path) -> str:
    """A1111's old model hash, which sd-webui-controlnet still names ControlNets by ("name [hash]"): the
    sha256 of 64 KiB read at 1 MiB into the file, first 8 hex digits. It reads 64 KiB whatever the file's
    size, so listing a 24 GB model costs nothing."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(PARTIAL_HASH_OFFSET)
        digest.update(fh.read(PARTIAL_HASH_BYTES))
    return digest.hexdigest()[:8]


def addnet_hash(path: Path) -> str:
    """The hash A1111 writes in "Lora hashes" (first 12 hex digits) and civitai matches: sha256 of a
    safetensors file's tensor data, without its 8-byte length and JSON header (so editing the metadata
    does not change it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        fh.seek(8 + header_len)
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
