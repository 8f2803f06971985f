"""Model hashes for /sdapi/v1/sd-models, computed only when it is cheap.

A1111 lists the 10-hex "shorthash" of each checkpoint. Hashing a 23 GB FLUX file takes minutes, so a
listing must not do it: a model's hash is computed here only when its weights are small, and is
otherwise learned from the first image made with it (the engine hashes a model when it loads it and
writes the hash into the infotext). Unknown hashes are listed as null.
"""

from __future__ import annotations

import threading
from app.catalog.entry import ModelEntry
from app.generation.model_hash import HashCache, weight_files_of

CHEAP_HASH_BYTES = 256 * 1024 * 1024


class ModelHashes:
    def __init__(self, cache: HashCache, *, cheap_bytes: int = CHEAP_HASH_BYTES):
        self._cache = cache  # the engine's own cache: one per process, so no file is hashed twice
        self._cheap_bytes = cheap_bytes
        self._lock = threading.Lock()
        self._known: dict[str, tuple[str | None, str | None]] = {}  # path -> (short hash, sha256)

    def of(self, entry: ModelEntry) -> tuple[str | None, str | None]:
        """(short hash, sha256 of the single weights file) of `entry`; None where not cheap to know."""
        key = str(entry.path)
        with self._lock:
            if key in self._known:
                return self._known[key]
        files = weight_files_of(entry)
        try:
            size = sum(f.stat().st_size for f in files)
        except OSError:
            return None, None
        if not files or size > self._cheap_bytes:
            return None, None
        try:
            short = self._cache.model_hash(files) or None
            sha256 = self._cache.sha256(files[0]) if len(files) == 1 else None
        except OSError:
            return None, None
        with self._lock:
            self._known[key] = (short, sha256)
        return short, sha256

    def learn(self, entry: ModelEntry, short_hash: str | None) -> None:
        """Remember a hash the engine computed (read from an infotext's "Model hash")."""
        if not short_hash:
            return
        with self._lock:
            self._known.setdefault(str(entry.path), (short_hash, None))
