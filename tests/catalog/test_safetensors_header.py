import json
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from app.catalog.safetensors_header import UnreadableFile, read_header
from app.errors import UnreadableModel


def _valid(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file(
        {"a.weight": torch.zeros(2, 3, dtype=torch.float16), "b.bias": torch.zeros(4, dtype=torch.float32)},
        str(path),
        metadata={"modelspec.title": "tiny"},
    )
    return path


def _raw(header: dict, data: bytes = b"") -> bytes:
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


def test_reads_names_dtypes_shapes_and_metadata(tmp_path):
    tensors, metadata = read_header(_valid(tmp_path))
    assert tensors == {"a.weight": ("F16", (2, 3)), "b.bias": ("F32", (4,))}
    assert metadata == {"modelspec.title": "tiny"}


def test_a_cut_download_is_reported_as_truncated_with_both_sizes(tmp_path):
    path = _valid(tmp_path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UnreadableFile) as err:
        read_header(path)
    needed = 2 * 3 * 2 + 4 * 4
    have = needed - 10
    assert err.value.reason == f"truncated: header says {needed:,} bytes of tensors, file has {have:,}"


def test_sizes_in_the_reason_use_thousands_separators(tmp_path):
    path = tmp_path / "big.safetensors"
    path.write_bytes(_raw({"w": {"dtype": "U8", "shape": [1234567], "data_offsets": [0, 1234567]}}, b"\0" * 1000))
    with pytest.raises(UnreadableFile) as err:
        read_header(path)
    assert err.value.reason == "truncated: header says 1,234,567 bytes of tensors, file has 1,000"


def test_file_cut_inside_the_header_is_truncated(tmp_path):
    path = _valid(tmp_path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(UnreadableFile, match="truncated: header says it is"):
        read_header(path)


def test_random_bytes_are_not_a_safetensors_file(tmp_path):
    path = tmp_path / "noise.safetensors"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(UnreadableFile, match="not a safetensors file"):
        read_header(path)


def test_tiny_and_empty_files(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    with pytest.raises(UnreadableFile, match="only 0 bytes"):
        read_header(path)


def test_broken_json_header_is_corrupt(tmp_path):
    path = tmp_path / "bad.safetensors"
    blob = b'{"w": {"dtype": "F16", '
    path.write_bytes(struct.pack("<Q", len(blob)) + blob)
    with pytest.raises(UnreadableFile, match="corrupt header: invalid JSON"):
        read_header(path)


def test_offsets_that_disagree_with_the_shape_are_corrupt(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(_raw({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8))
    with pytest.raises(UnreadableFile, match="tensor 'w' has 8 bytes for shape \\[4\\] F32"):
        read_header(path)


def test_a_missing_file_is_unreadable_not_a_crash(tmp_path):
    with pytest.raises(UnreadableFile, match="cannot read the file"):
        read_header(tmp_path / "nope.safetensors")


def test_unreadable_file_is_a_domain_error_carrying_the_path(tmp_path):
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"12")
    with pytest.raises(UnreadableModel) as err:
        read_header(path)
    assert str(path) in str(err.value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=200), flips=st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), max_size=4))
def test_damaged_files_only_ever_raise_unreadable_file(tmp_path, cut, flips):
    good = _valid(tmp_path).read_bytes()
    data = bytearray(good[: len(good) - cut] if cut else good)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(bytes(data))
    try:
        read_header(path)
    except UnreadableFile:
        pass
