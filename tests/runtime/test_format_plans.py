"""FLUX.1 dev in each format people download, at the released sizes, planned on fake cards: the footprint
comes from the files (bf16 23.8 GB, fp8 e4m3fn 11.9 GB, GGUF Q8_0 12.7 GB and Q4_K_S 6.8 GB, T5-XXL fp16
9.5 GB) and the quantized formats get the placements the bf16 file cannot. The files are sparse: headers
that name the tensors, and holes where the weights would be."""

import json
import struct

import pytest

from app.catalog.entry import READY, ModelEntry
from app.engine.manager import footprint_of
from app.runtime.devices import GIB, DeviceInfo
from app.runtime.memory import plan_memory

GB = 1_000_000_000
TRANSFORMERS = {"bf16": ("BF16", 23.8), "fp8": ("F8_E4M3", 11.9), "Q8_0": (None, 12.7), "Q4_K_S": (None, 6.8)}


def sparse_safetensors(path, dtype: str, size_gb: float) -> None:
    """A safetensors file whose one tensor of `dtype` takes `size_gb`, its data a hole on disk."""
    nbytes = int(size_gb * GB)
    width = {"BF16": 2, "F16": 2, "F8_E4M3": 1}[dtype]
    header = json.dumps({"w": {"dtype": dtype, "shape": [nbytes // width], "data_offsets": [0, nbytes]}}).encode()
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + nbytes)


def sparse_gguf(path, size_gb: float) -> None:
    with path.open("wb") as f:
        f.write(b"GGUF")
        f.truncate(int(size_gb * GB))


@pytest.fixture(scope="module")
def footprints(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    t5, clip, vae = root / "t5xxl_fp16.safetensors", root / "clip_l.safetensors", root / "ae.safetensors"
    sparse_safetensors(t5, "F16", 9.5)
    sparse_safetensors(clip, "F16", 0.25)
    sparse_safetensors(vae, "F16", 0.17)
    out = {}
    for name, (dtype, size) in TRANSFORMERS.items():
        main = root / (f"flux1-dev-{name}.gguf" if dtype is None else f"flux1-dev-{name}.safetensors")
        sparse_gguf(main, size) if dtype is None else sparse_safetensors(main, dtype, size)
        entry = ModelEntry(name=main.stem, family="flux", variant="flux-dev", format="single-file", path=main,
                           size_bytes=0, status=READY,
                           parts={"transformer": main, "clip_l": clip, "t5xxl": t5, "vae": vae})
        out[name] = footprint_of(entry)
    return out


def cuda(gib: float) -> DeviceInfo:
    total = int(gib * GIB)
    return DeviceInfo("cuda", f"CUDA {gib:g} GB", 0, total, total - int(0.4 * GIB), (8, 9), True)


def test_each_formats_transformer_is_counted_as_it_stays_in_memory(footprints):
    assert {name: round(f.transformer / GB, 1) for name, f in footprints.items()} == \
        {"bf16": 23.8, "fp8": 11.9, "Q8_0": 12.7, "Q4_K_S": 6.8}
    assert {round(f.t5 / GB, 1) for f in footprints.values()} == {9.5}


# card -> format -> (placement, T5 on the CPU)
EXPECTED = {
    12: {"bf16": ("group_offload", True), "fp8": ("group_offload", True), "Q4_K_S": ("gpu", True)},
    16: {"bf16": ("group_offload", True), "fp8": ("gpu", True), "Q8_0": ("gpu", True), "Q4_K_S": ("gpu", True)},
    24: {"bf16": ("model_offload", False), "fp8": ("gpu", False), "Q8_0": ("gpu", False)},
    48: {"bf16": ("gpu", False)},
}


@pytest.mark.parametrize("card", list(EXPECTED))
def test_the_quantized_formats_get_the_placements_bf16_cannot(footprints, card):
    for name, (placement, t5_on_cpu) in EXPECTED[card].items():
        plan = plan_memory(cuda(card), footprints[name])
        assert (plan.placement, plan.t5_on_cpu) == (placement, t5_on_cpu), f"{name} on {card} GB: {plan.describe()}"
