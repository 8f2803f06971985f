"""plan_memory over fake devices: the whole policy as one table, then the flags."""

import pytest

from app.runtime.devices import GIB, DeviceInfo
from app.runtime.memory import (
    BASE_RESERVE,
    VAE_DECODE_RESERVE,
    MemoryOverrides,
    MemoryPlan,
    ModelFootprint,
    inference_reserve,
    plan_memory,
    vae_decode_reserve,
)

# CUDA cards report their total; free is what is left after the CUDA context and a desktop (0.4 GiB).
CONTEXT = int(0.4 * GIB)


def cuda(label: str, gib: float, capability: tuple[int, int]) -> DeviceInfo:
    total = int(gib * GIB)
    return DeviceInfo("cuda", label, 0, total, total - CONTEXT, capability, capability >= (8, 0))


def mac(label: str, working_set_gib: float) -> DeviceInfo:
    """Metal's recommended working set is about 2/3 of RAM on small Macs and 3/4 on big ones."""
    budget = int(working_set_gib * GIB)
    return DeviceInfo("mps", label, None, budget, budget, None, True)


def cpu(label: str, ram_gib: int, available_gib: int) -> DeviceInfo:
    return DeviceInfo("cpu", label, None, ram_gib * GIB, available_gib * GIB, None, True)


DEVICES = {
    "CPU 32 GB": cpu("CPU 32 GB", 32, 28),
    "CPU 64 GB": cpu("CPU 64 GB", 64, 60),
    "MPS 16 GB": mac("MPS 16 GB", 10.67),
    "MPS 32 GB": mac("MPS 32 GB", 21.33),
    "MPS 64 GB": mac("MPS 64 GB", 48),
    "CUDA 4 GB Turing": cuda("CUDA 4 GB Turing", 4, (7, 5)),
    "CUDA 6 GB Turing": cuda("CUDA 6 GB Turing", 6, (7, 5)),
    "CUDA 8 GB Ampere": cuda("CUDA 8 GB Ampere", 8, (8, 6)),
    "CUDA 12 GB Ampere": cuda("CUDA 12 GB Ampere", 12, (8, 6)),
    "CUDA 16 GB Ada": cuda("CUDA 16 GB Ada", 16, (8, 9)),
    "CUDA 24 GB Ada": cuda("CUDA 24 GB Ada", 24, (8, 9)),
    "CUDA 48 GB Ampere": cuda("CUDA 48 GB Ampere", 48, (8, 6)),
    "CUDA 80 GB Hopper": cuda("CUDA 80 GB Hopper", 80, (9, 0)),
}
VARIANTS = ("flux-dev", "flux-schnell", "sd3.5-large", "sd3.5-medium")

# Each cell: placement [+t5cpu] dtype.  gpu = all on the device, model/group/seq = the offload kinds.
# Sizes at 16 bits: FLUX 31.4 GiB (transformer 22.2), SD3.5 large 25.7 GiB (transformer 15.2, all but
# T5 16.9), SD3.5 medium 15.1 GiB (transformer 4.6, all but T5 6.3); T5 8.8 GiB. Resident weights
# need 2.5 GiB beside them for a 1024² VAE decode; model offload needs the largest component + 1 GiB.
EXPECTED = {
    # device               flux-dev             flux-schnell         sd3.5-large          sd3.5-medium
    "CPU 32 GB":          ("cpu bf16",          "cpu bf16",          "cpu bf16",          "cpu bf16"),
    "CPU 64 GB":          ("cpu bf16",          "cpu bf16",          "cpu fp32",          "cpu fp32"),
    "MPS 16 GB":          ("group+t5cpu bf16",  "group+t5cpu bf16",  "group+t5cpu bf16",  "gpu+t5cpu bf16"),
    "MPS 32 GB":          ("group+t5cpu bf16",  "group+t5cpu bf16",  "gpu+t5cpu bf16",    "gpu bf16"),
    "MPS 64 GB":          ("gpu bf16",          "gpu bf16",          "gpu bf16",          "gpu bf16"),
    "CUDA 4 GB Turing":   ("seq fp16",          "seq fp16",          "seq fp16",          "seq fp16"),
    "CUDA 6 GB Turing":   ("group+t5cpu fp16",  "group+t5cpu fp16",  "group+t5cpu fp16",  "group+t5cpu fp16"),
    "CUDA 8 GB Ampere":   ("group+t5cpu bf16",  "group+t5cpu bf16",  "group+t5cpu bf16",  "group+t5cpu bf16"),
    "CUDA 12 GB Ampere":  ("group+t5cpu bf16",  "group+t5cpu bf16",  "group+t5cpu bf16",  "gpu+t5cpu bf16"),
    "CUDA 16 GB Ada":     ("group+t5cpu bf16",  "group+t5cpu bf16",  "group+t5cpu bf16",  "gpu+t5cpu bf16"),
    "CUDA 24 GB Ada":     ("model bf16",        "model bf16",        "model bf16",        "gpu bf16"),
    "CUDA 48 GB Ampere":  ("gpu bf16",          "gpu bf16",          "gpu bf16",          "gpu bf16"),
    "CUDA 80 GB Hopper":  ("gpu bf16",          "gpu bf16",          "gpu bf16",          "gpu bf16"),
}  # fmt: skip

_PLACEMENT = {"gpu": "gpu", "model": "model_offload", "group": "group_offload", "seq": "sequential_offload",
              "cpu": "cpu"}  # fmt: skip
_DTYPE = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def parse_cell(cell: str) -> tuple[str, str, bool]:
    where, dtype = cell.split()
    placement, _, t5 = where.partition("+")
    return _PLACEMENT[placement], _DTYPE[dtype], t5 == "t5cpu"


CASES = [(device, variant, EXPECTED[device][i]) for device in DEVICES for i, variant in enumerate(VARIANTS)]


@pytest.mark.parametrize("device_name, variant, cell", CASES)
def test_policy_table(device_name, variant, cell):
    plan = plan_memory(DEVICES[device_name], ModelFootprint.for_variant(variant))
    assert (plan.placement, plan.dtype, plan.t5_on_cpu) == parse_cell(cell), plan.reasons


def test_print_policy_table():
    """The whole table in one view (pytest -s shows it)."""
    lines = []
    for name, device in DEVICES.items():
        for variant in VARIANTS:
            plan = plan_memory(device, ModelFootprint.for_variant(variant))
            lines.append(f"{name:18} {variant:13} {plan.describe()}")
    print("\n" + "\n".join(lines))
    assert len(lines) == len(CASES)


def test_every_plan_explains_dtype_and_placement():
    for device in DEVICES.values():
        plan = plan_memory(device, ModelFootprint.for_variant("flux-dev"))
        assert plan.reasons[0].startswith(("bf16", "fp16", "fp32"))
        assert len(plan.reasons) >= 2


def test_plan_is_pure_and_repeatable():
    device, footprint = DEVICES["CUDA 16 GB Ada"], ModelFootprint.for_variant("sd3.5-large")
    assert plan_memory(device, footprint) == plan_memory(device, footprint)


@pytest.mark.parametrize(
    "device_name, tiling, attention",
    [
        ("CUDA 4 GB Turing", True, True),
        ("CUDA 8 GB Ampere", True, False),
        ("CUDA 12 GB Ampere", False, False),
        ("CUDA 80 GB Hopper", False, False),
        ("MPS 16 GB", True, True),
        ("MPS 32 GB", False, True),
        ("MPS 64 GB", False, False),
        ("CPU 64 GB", False, False),
    ],
)
def test_vae_tiling_and_attention_slicing_by_device(device_name, tiling, attention):
    plan = plan_memory(DEVICES[device_name], ModelFootprint.for_variant("sd3.5-medium"))
    assert (plan.vae_tiling, plan.attention_slicing) == (tiling, attention)


def test_vae_slicing_only_when_memory_is_tight():
    roomy = plan_memory(DEVICES["CUDA 80 GB Hopper"], ModelFootprint.for_variant("flux-dev"))
    offloaded = plan_memory(DEVICES["CUDA 24 GB Ada"], ModelFootprint.for_variant("flux-dev"))
    # 12 GB card, SD3.5 medium without T5: 6.3 GiB + 2.5 GiB reserve in 11.6 GiB leaves 2.8 GiB spare.
    resident = plan_memory(DEVICES["CUDA 12 GB Ampere"], ModelFootprint.for_variant("sd3.5-medium"))
    # 10 GB card, SD3.5 medium without T5: 6.3 GiB + 2.5 GiB in 9.6 GiB leaves 0.8 GiB.
    tight = plan_memory(cuda("CUDA 10 GB Ampere", 10, (8, 6)), ModelFootprint.for_variant("sd3.5-medium"))
    assert (resident.placement, tight.placement) == ("gpu", "gpu")
    assert (roomy.vae_slicing, offloaded.vae_slicing, resident.vae_slicing, tight.vae_slicing) == (
        False,
        True,
        False,
        True,
    )


def test_denoising_reserve_is_forge_default_plus_a_share_of_big_cards():
    assert inference_reserve(8 * GIB) == BASE_RESERVE
    assert inference_reserve(24 * GIB) == BASE_RESERVE
    assert inference_reserve(80 * GIB) == BASE_RESERVE + int(56 * GIB * 0.05)


def test_resident_plans_keep_room_for_the_larger_of_denoising_and_decoding():
    big = plan_memory(DEVICES["CUDA 80 GB Hopper"], ModelFootprint.for_variant("flux-dev"))
    mid = plan_memory(DEVICES["CUDA 48 GB Ampere"], ModelFootprint.for_variant("flux-dev"))
    fp32 = plan_with("CUDA 80 GB Hopper", "flux-dev", no_half=True)
    assert big.reserve_bytes == inference_reserve(80 * GIB)  # 3.8 GiB > the 2.5 GiB decode
    assert mid.reserve_bytes == VAE_DECODE_RESERVE  # 2.2 GiB < the 2.5 GiB decode
    assert vae_decode_reserve("float32") == 2 * VAE_DECODE_RESERVE
    assert fp32.reserve_bytes == 2 * VAE_DECODE_RESERVE


def test_model_offload_needs_room_for_the_largest_component_only():
    """On a 24 GB card FLUX's 22.2 GiB transformer + 1 GiB fits; the VAE decodes after it is swapped out."""
    plan = plan_memory(DEVICES["CUDA 24 GB Ada"], ModelFootprint.for_variant("flux-dev"))
    assert plan.placement == "model_offload"
    assert ModelFootprint.for_variant("flux-dev").transformer + plan.reserve_bytes > plan.budget_bytes


def test_a_1024_decode_beside_resident_weights_decides_the_8_gb_case():
    """SD3.5 medium without T5 (6.3 GiB) + 1 GiB would fit 7.6 GiB, but the decode needs 2.5 GiB."""
    plan = plan_memory(DEVICES["CUDA 8 GB Ampere"], ModelFootprint.for_variant("sd3.5-medium"))
    assert (plan.placement, plan.t5_on_cpu) == ("group_offload", True)


def test_free_memory_not_total_decides_fit():
    """Another program holding VRAM pushes the plan down the ladder."""
    busy = DeviceInfo("cuda", "busy 48 GB", 0, 48 * GIB, 20 * GIB, (8, 6), True)
    plan = plan_memory(busy, ModelFootprint.for_variant("flux-dev"))
    assert plan.placement == "group_offload"
    assert plan.budget_bytes == 20 * GIB


def test_describe_model_offload():
    plan = plan_memory(DEVICES["CUDA 24 GB Ada"], ModelFootprint.for_variant("flux-dev"))
    assert plan.describe() == "bf16 · model CPU offload · VAE slicing · (23.6 GiB VRAM free, needs 33.9 GiB)"


def test_describe_group_offload_with_t5_on_cpu():
    plan = plan_memory(DEVICES["CUDA 6 GB Turing"], ModelFootprint.for_variant("flux-dev"))
    assert plan.describe() == (
        "fp16 · group offload (CUDA streams) · T5 on CPU · VAE tiling · VAE slicing · "
        "(5.6 GiB VRAM free, needs 33.9 GiB)"
    )


def test_describe_mps_and_cpu():
    mps = plan_memory(DEVICES["MPS 64 GB"], ModelFootprint.for_variant("sd3.5-medium"))
    cpu_plan = plan_memory(DEVICES["CPU 64 GB"], ModelFootprint.for_variant("sd3.5-medium"))
    assert mps.describe() == "bf16 · all on MPS · (48.0 GiB unified free, needs 17.6 GiB)"
    assert cpu_plan.describe().startswith("fp32 · CPU · (60.0 GiB RAM free, needs ")


def test_fp32_doubles_the_weights_and_changes_the_fit():
    device = DEVICES["CUDA 48 GB Ampere"]
    plan = plan_memory(device, ModelFootprint.for_variant("flux-dev"), MemoryOverrides(no_half=True))
    assert plan.dtype == "float32"
    assert plan.placement == "model_offload"  # 62.8 GiB of fp32 weights no longer fit 47.6 GiB
    assert plan.required_bytes == 2 * ModelFootprint.for_variant("flux-dev").total + plan.reserve_bytes


# --- flags


def plan_with(device_name: str, variant: str, **flags) -> MemoryPlan:
    return plan_memory(DEVICES[device_name], ModelFootprint.for_variant(variant), MemoryOverrides.from_flags(**flags))


def test_lowvram_uses_streamed_group_offload_on_cuda():
    plan = plan_with("CUDA 80 GB Hopper", "flux-dev", lowvram=True)
    assert plan.placement == "group_offload"
    assert any("--lowvram" in r for r in plan.reasons)


def test_lowvram_uses_sequential_offload_without_streams_or_room():
    assert plan_with("MPS 64 GB", "flux-dev", lowvram=True).placement == "sequential_offload"
    assert plan_with("CUDA 4 GB Turing", "sd3.5-medium", lowvram=True).placement == "sequential_offload"


def test_medvram_offloads_at_least_whole_models():
    plan = plan_with("CUDA 48 GB Ampere", "flux-dev", medvram=True)
    assert (plan.placement, plan.t5_on_cpu) == ("model_offload", False)


def test_medvram_goes_further_when_model_offload_cannot_hold_t5():
    # T5 (8.8 GiB) cannot be swapped onto an 8 GB card, so model offload is skipped for group offload.
    plan = plan_with("CUDA 8 GB Ampere", "sd3.5-medium", medvram=True)
    assert (plan.placement, plan.t5_on_cpu) == ("group_offload", True)


@pytest.mark.parametrize("device_name", ["CUDA 80 GB Hopper", "CUDA 6 GB Turing", "MPS 32 GB", "CPU 64 GB"])
def test_force_fp16(device_name):
    assert plan_with(device_name, "flux-dev", force_fp16=True).dtype == "float16"


@pytest.mark.parametrize("device_name", ["CUDA 80 GB Hopper", "CUDA 6 GB Turing", "MPS 32 GB", "CPU 32 GB"])
def test_no_half_means_fp32_anywhere(device_name):
    assert plan_with(device_name, "sd3.5-medium", no_half=True).dtype == "float32"


def test_offload_none_on_a_small_card_keeps_everything_and_warns():
    plan = plan_with("CUDA 8 GB Ampere", "flux-dev", offload="none")
    assert plan.placement == "gpu"
    assert any("may run out of memory" in r for r in plan.reasons)


def test_offload_none_that_fits_does_not_warn():
    plan = plan_with("CUDA 80 GB Hopper", "flux-dev", offload="none")
    assert plan.placement == "gpu"
    assert not any("warning" in r for r in plan.reasons)


def test_offload_model_forced_warns_when_the_transformer_does_not_fit():
    plan = plan_with("CUDA 12 GB Ampere", "flux-dev", offload="model")
    assert (plan.placement, plan.t5_on_cpu) == ("model_offload", False)
    assert any("may run out of memory" in r for r in plan.reasons)


def test_offload_group_falls_back_to_sequential_where_impossible():
    plan = plan_with("CUDA 4 GB Turing", "flux-dev", offload="group")
    assert plan.placement == "sequential_offload"
    assert any("not possible" in r for r in plan.reasons)


def test_offload_sequential_forced_on_a_big_card():
    assert plan_with("CUDA 80 GB Hopper", "sd3.5-large", offload="sequential").placement == "sequential_offload"


def test_vae_tiling_override_both_ways():
    assert plan_with("CUDA 8 GB Ampere", "flux-dev", vae_tiling=False).vae_tiling is False
    assert plan_with("CUDA 80 GB Hopper", "flux-dev", vae_tiling=True).vae_tiling is True
    assert plan_with("CPU 64 GB", "flux-dev", vae_tiling=True).vae_tiling is True


def test_cpu_ignores_offload_flags_with_a_reason():
    plan = plan_with("CPU 64 GB", "sd3.5-medium", lowvram=True)
    assert plan.placement == "cpu"
    assert any("ignored" in r for r in plan.reasons)


# --- conflicting flags


@pytest.mark.parametrize(
    "flags, named",
    [
        ({"lowvram": True, "medvram": True}, "--lowvram and --medvram"),
        ({"force_fp16": True, "no_half": True}, "--force-fp16 and --no-half"),
        ({"offload": "disk"}, "--offload must be one of auto, none, model, group, sequential"),
        ({"lowvram": True, "offload": "none"}, "--lowvram"),
        ({"lowvram": True, "offload": "model"}, "--offload model"),
        ({"medvram": True, "offload": "none"}, "--medvram"),
    ],
)
def test_conflicting_flags_are_refused(flags, named):
    with pytest.raises(ValueError, match=named):
        MemoryOverrides.from_flags(**flags)


def test_direct_construction_is_checked_too():
    with pytest.raises(ValueError, match="--lowvram and --medvram"):
        MemoryOverrides(lowvram=True, medvram=True)


def test_from_flags_normalises_offload():
    assert MemoryOverrides.from_flags(offload=" Group ").offload == "group"
    assert MemoryOverrides.from_flags(offload=None).offload == "auto"
    assert MemoryOverrides.from_flags(medvram=True, offload="sequential").offload == "sequential"


def test_hand_built_plans_are_validated():
    with pytest.raises(ValueError, match="placement"):
        MemoryPlan("bfloat16", "disk", False, False, False, False, 0)
    with pytest.raises(ValueError, match="dtype"):
        MemoryPlan("int8", "gpu", False, False, False, False, 0)
