"""The short hash sd-webui-controlnet lists ControlNets by ("name [hash]"): A1111's old model hash, the
sha256 of 64 KiB read at 1 MiB into the file, so a client sending the name it listed finds the model."""

import hashlib
import os

from app.generation.model_hash import HashCache, partial_hash


def test_it_is_the_sha256_of_64_kib_at_1_mib_and_is_cached(tmp_path):
    data = os.urandom(3 << 20)
    path = tmp_path / "control.safetensors"
    path.write_bytes(data)
    expected = hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
    assert partial_hash(path) == expected
    cache = HashCache(tmp_path / "hashes.json")
    assert cache.partial_hash(path) == expected
    assert f"partial|{path.resolve()}" in cache.cache_file.read_text()
    changed = bytearray(data)
    changed[-1] ^= 0xFF  # beyond the part it reads: the old hash does not see it, as in A1111
    path.write_bytes(bytes(changed))
    assert partial_hash(path) == expected


def test_a_file_shorter_than_1_mib_hashes_nothing_as_a1111_does(tmp_path):
    path = tmp_path / "tiny.safetensors"
    path.write_bytes(b"x" * 100)
    assert partial_hash(path) == hashlib.sha256(b"").hexdigest()[:8]
