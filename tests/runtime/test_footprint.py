import pytest
import torch
from safetensors.torch import save_file

from app.runtime.memory import GB, ModelFootprint
from app.runtime.weights import first_tensor_dtype, read_safetensors_header, sixteen_bit_size


@pytest.mark.parametrize(
    "variant, transformer, text_encoders, t5, vae",
    [
        ("flux-dev", 23.8, 0.25, 9.5, 0.17),
        ("flux-schnell", 23.8, 0.25, 9.5, 0.17),
        ("sd3.5-large", 16.3, 1.65, 9.5, 0.17),
        ("sd3.5-large-turbo", 16.3, 1.65, 9.5, 0.17),
        ("sd3.5-medium", 4.9, 1.65, 9.5, 0.17),
    ],
)
def test_released_sizes(variant, transformer, text_encoders, t5, vae):
    footprint = ModelFootprint.for_variant(variant)
    got = (footprint.transformer, footprint.text_encoders, footprint.t5, footprint.vae)
    assert got == pytest.approx((transformer * GB, text_encoders * GB, t5 * GB, vae * GB), rel=1e-6)
    assert footprint.total == sum(got)
    assert footprint.without_t5 == footprint.total - footprint.t5


def test_unknown_variant_lists_the_known_ones():
    with pytest.raises(ValueError, match="flux-schnell, flux-dev, sd3.5-large"):
        ModelFootprint.for_variant("sdxl")


def test_largest_component_and_fp32():
    footprint = ModelFootprint(transformer=10, text_encoders=3, t5=12, vae=1)
    assert footprint.largest_component == 12
    assert footprint.at_dtype("float32") == ModelFootprint(20, 6, 24, 2)
    assert footprint.at_dtype("float16") == footprint


def _save(path, dtype, n, extra=None):
    tensors = {"weight": torch.zeros(n, dtype=dtype)}
    tensors.update(extra or {})
    save_file(tensors, str(path))
    return path


def test_sixteen_bit_size_normalises_by_dtype(tmp_path):
    n = 1000
    assert sixteen_bit_size(_save(tmp_path / "bf16.safetensors", torch.bfloat16, n)) == 2 * n
    assert sixteen_bit_size(_save(tmp_path / "fp8.safetensors", torch.float8_e4m3fn, n)) == 2 * n  # doubles
    assert sixteen_bit_size(_save(tmp_path / "fp32.safetensors", torch.float32, n)) == 2 * n  # halves
    assert (tmp_path / "fp8.safetensors").stat().st_size < 2 * n < (tmp_path / "fp32.safetensors").stat().st_size


def test_mixed_file_counts_each_tensor_and_keeps_integers_as_stored(tmp_path):
    path = _save(
        tmp_path / "mixed.safetensors",
        torch.float8_e4m3fn,
        1000,
        extra={"norm": torch.zeros(10, dtype=torch.float32), "ids": torch.zeros(5, dtype=torch.int64)},
    )
    assert sixteen_bit_size(path) == 2 * 1000 + 2 * 10 + 8 * 5


def test_first_tensor_dtype_reads_the_header_only(tmp_path):
    path = _save(tmp_path / "fp8.safetensors", torch.float8_e4m3fn, 16)
    assert first_tensor_dtype(read_safetensors_header(path)) == "F8_E4M3"


def test_missing_foreign_and_broken_files(tmp_path):
    assert sixteen_bit_size(tmp_path / "absent.safetensors") == 0
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 96)
    assert sixteen_bit_size(gguf) == 100  # quantized formats stay quantized in memory
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    assert sixteen_bit_size(broken) == broken.stat().st_size
    not_json = tmp_path / "not_json.safetensors"
    not_json.write_bytes((4).to_bytes(8, "little") + b"\xff\xfe{[")
    assert sixteen_bit_size(not_json) == not_json.stat().st_size


def test_from_files_sums_roles(tmp_path):
    shard_a = _save(tmp_path / "transformer-1.safetensors", torch.bfloat16, 600)
    shard_b = _save(tmp_path / "transformer-2.safetensors", torch.bfloat16, 400)
    clip_l = _save(tmp_path / "clip_l.safetensors", torch.float16, 50)
    t5_fp8 = _save(tmp_path / "t5xxl_fp8.safetensors", torch.float8_e4m3fn, 300)
    vae_fp32 = _save(tmp_path / "ae.safetensors", torch.float32, 20)
    footprint = ModelFootprint.from_files(
        {
            "transformer": [shard_a, str(shard_b)],
            "text_encoders": [clip_l, tmp_path / "clip_g_missing.safetensors"],
            "t5": [t5_fp8],
            "vae": [vae_fp32],
        }
    )
    assert footprint == ModelFootprint(transformer=2000, text_encoders=100, t5=600, vae=40)


def test_from_files_missing_role_counts_zero_and_unknown_role_is_refused(tmp_path):
    vae = _save(tmp_path / "vae.safetensors", torch.bfloat16, 8)
    assert ModelFootprint.from_files({"vae": [vae]}) == ModelFootprint(0, 0, 0, 16)
    with pytest.raises(ValueError, match="unknown footprint roles.*transformer, text_encoders, t5, vae"):
        ModelFootprint.from_files({"unet": [vae]})
