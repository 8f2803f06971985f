"""plan_memory with what Easel already keeps on the device and with the job's batch x size (fake devices)."""

from dataclasses import replace

import pytest

from app.runtime.devices import GIB, DeviceInfo
from app.runtime.memory import (
    DENOISE_ACTIVATIONS,
    VAE_DECODE_RESERVE,
    MemoryOverrides,
    ModelFootprint,
    Workload,
    denoise_reserve,
    held_bytes,
    plan_memory,
    vae_decode_reserve,
)
from app.runtime.residency import Holding, must_reload, plan_beside

CONTEXT = int(0.4 * GIB)  # the CUDA context and a desktop
FLUX, MEDIUM = ModelFootprint.for_variant("flux-dev"), ModelFootprint.for_variant("sd3.5-medium")


def cuda(gib: float) -> DeviceInfo:
    total = int(gib * GIB)
    return DeviceInfo("cuda", f"CUDA {gib:g} GB", 0, total, total - CONTEXT, (8, 9), True)


# --- models and upscalers already on the device


def test_another_loaded_model_holding_20_gb_of_a_24_gb_card_pushes_flux_to_offload():
    alone = plan_memory(cuda(24), FLUX)
    beside = plan_memory(cuda(24), FLUX, resident_bytes=20 * GIB)
    assert alone.placement == "model_offload"  # its 22.2 GiB transformer fits the whole card
    assert beside.placement == "group_offload"  # with 3.6 GiB left, only streamed blocks fit
    assert beside.budget_bytes == cuda(24).free_memory - 20 * GIB
    assert beside.describe().endswith("(3.6 GiB VRAM free beside 20.0 GiB kept loaded, needs 33.9 GiB)")


def test_with_almost_nothing_left_only_sequential_offload_remains():
    plan = plan_memory(cuda(24), FLUX, resident_bytes=22 * GIB)
    assert plan.placement == "sequential_offload"
    assert plan.budget_bytes == 2 * GIB - CONTEXT


def test_an_upscaler_holding_3_gb_moves_the_plan():
    # SD3.5 medium without T5 (6.3 GiB) + 2.5 GiB decode fits 11.6 GiB; with 3 GiB gone it does not.
    assert plan_memory(cuda(12), MEDIUM).placement == "gpu"
    assert plan_memory(cuda(12), MEDIUM, resident_bytes=3 * GIB).placement == "group_offload"
    # FLUX's transformer + 1 GiB fits a 24 GB card for model offload; 3 GiB less and it no longer does.
    assert plan_memory(cuda(24), FLUX, resident_bytes=3 * GIB).placement == "group_offload"


def test_resident_bytes_that_cannot_be_are_refused():
    with pytest.raises(ValueError, match="resident_bytes must be 0 or more; got -1"):
        plan_memory(cuda(24), FLUX, resident_bytes=-1)


def test_more_resident_than_free_leaves_a_zero_budget_not_a_negative_one():
    plan = plan_memory(cuda(8), MEDIUM, resident_bytes=40 * GIB)
    assert plan.budget_bytes == 0
    assert plan.placement == "sequential_offload"


# --- the job's batch x size


def test_a_batch_of_8_at_1024_on_a_16_gb_card_slices_the_vae_where_one_image_does_not():
    one = plan_memory(cuda(16), MEDIUM, workload=Workload(1, 1024, 1024))
    eight = plan_memory(cuda(16), MEDIUM, workload=Workload(8, 1024, 1024))
    assert (one.placement, one.t5_on_cpu, one.vae_slicing) == ("gpu", True, False)
    # 8 images decoded at once would need 20 GiB; one at a time 2.5 GiB beside the 6.3 GiB resident.
    assert (eight.placement, eight.t5_on_cpu, eight.vae_slicing) == ("gpu", True, True)
    assert any("batch of 8" in r for r in eight.reasons)


def test_a_2048_image_on_a_16_gb_card_tiles_the_vae_where_1024_does_not():
    small = plan_memory(cuda(16), MEDIUM, workload=Workload(1, 1024, 1024))
    large = plan_memory(cuda(16), MEDIUM, workload=Workload(1, 2048, 2048))
    assert (small.vae_tiling, large.vae_tiling) == (False, True)
    assert large.placement == "gpu"  # tiling, not offloading, makes room for the decode


def test_tiling_forbidden_by_the_user_makes_a_big_decode_push_the_weights_off_instead():
    plan = plan_memory(cuda(16), MEDIUM, MemoryOverrides(vae_tiling=False), workload=Workload(1, 2048, 2048))
    assert plan.vae_tiling is False
    # 6.3 GiB + a 10 GiB decode exceed 15.6 GiB; swapped in alone, the VAE decodes in 10.2 GiB.
    assert plan.placement == "model_offload"


def test_a_big_batch_needs_a_lower_rung_than_one_image():
    """FLUX on a 24 GB card: 22.2 GiB transformer + 3.7 GiB of activations for 8 images exceed 23.6 GiB."""
    assert plan_memory(cuda(24), FLUX, workload=Workload(8, 1024, 1024)).placement == "group_offload"


def test_the_default_workload_is_one_1024_image():
    assert plan_memory(cuda(16), MEDIUM) == plan_memory(cuda(16), MEDIUM, workload=Workload(1, 1024, 1024))


def test_reserves_scale_with_batch_and_pixels():
    eight = Workload(8, 1024, 1024)
    assert denoise_reserve(16 * GIB, "bfloat16", eight) == 8 * DENOISE_ACTIVATIONS
    assert denoise_reserve(16 * GIB, "bfloat16", Workload(1, 512, 512)) == GIB  # Forge's floor
    assert vae_decode_reserve("bfloat16", eight) == 8 * VAE_DECODE_RESERVE
    assert vae_decode_reserve("bfloat16", eight, sliced=True) == VAE_DECODE_RESERVE
    assert vae_decode_reserve("bfloat16", Workload(1, 2048, 2048)) == 4 * VAE_DECODE_RESERVE
    assert vae_decode_reserve("bfloat16", Workload(1, 2048, 2048), tiled=True) == VAE_DECODE_RESERVE
    assert vae_decode_reserve("float32", Workload(2, 512, 512)) == VAE_DECODE_RESERVE  # 2 x 1/4 x 2 bytes


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("width", -8), ("height", 1.5)])
def test_a_workload_that_cannot_be_names_its_field(field, value):
    fields = {"batch_size": 1, "width": 512, "height": 512, field: value}
    with pytest.raises(ValueError, match=f"workload {field} must be a whole number of at least 1"):
        Workload(**fields)


# --- what a placed pipeline keeps on the device between jobs


@pytest.mark.parametrize(
    "gib, placement, t5_on_cpu, held",
    [
        (80, "gpu", False, FLUX.total),
        (16, "gpu", True, MEDIUM.without_t5),
        (24, "model_offload", False, 0),
        (8, "group_offload", True, FLUX.vae),
        (4, "sequential_offload", False, 0),
    ],
)
def test_held_bytes_follow_the_placement(gib, placement, t5_on_cpu, held):
    footprint = MEDIUM if gib == 16 else FLUX
    plan = plan_memory(cuda(gib), footprint)
    assert (plan.placement, plan.t5_on_cpu) == (placement, t5_on_cpu)
    assert held_bytes(plan, footprint) == held


def test_on_the_cpu_ram_holds_every_weight_at_the_plan_dtype():
    ram = DeviceInfo("cpu", "CPU", None, 64 * GIB, 60 * GIB, None, True)
    plan = plan_memory(ram, MEDIUM)
    assert plan.dtype == "float32"
    assert held_bytes(plan, MEDIUM) == 2 * MEDIUM.total


# --- planning beside Easel's own holdings, from a live reading


def test_a_live_reading_that_shows_another_loaded_model_is_not_counted_twice():
    """24 GB card, another model holds 20 GiB: the driver reports 3.6 GiB free, and the plan gets 3.6 GiB."""
    reading = replace(cuda(24), free_memory=cuda(24).free_memory - 20 * GIB)
    plan = plan_beside(reading, FLUX, MemoryOverrides(), holdings=[Holding("sd3.5-large", 20 * GIB)])
    assert (plan.placement, plan.budget_bytes, plan.resident_bytes) == ("group_offload", reading.free_memory, 20 * GIB)


def test_planning_a_loaded_model_again_frees_its_own_bytes():
    """FLUX resident on an 80 GB card: the reading shows its 31.4 GiB used, but they are its own."""
    reading = replace(cuda(80), free_memory=cuda(80).free_memory - FLUX.total)
    again = plan_beside(reading, FLUX, MemoryOverrides(), holdings=[Holding("flux", FLUX.total)], leaving={"flux"})
    assert again == plan_memory(cuda(80), FLUX)


def test_a_bigger_job_reloads_a_model_whose_placement_it_does_not_fit():
    placed = plan_memory(cuda(24), FLUX)  # model offload, for one 1024² image
    batch = plan_memory(cuda(24), FLUX, workload=Workload(8, 1024, 1024))  # group offload
    assert must_reload(placed, batch) is True
    assert must_reload(batch, placed) is False  # a smaller job never reloads to climb back up


def test_a_reading_that_drifted_does_not_reload():
    placed = plan_memory(cuda(24), FLUX)
    drifted = plan_memory(replace(cuda(24), free_memory=22 * GIB), FLUX)  # same job, 1.6 GiB less free
    assert drifted.placement == "group_offload"
    assert must_reload(placed, drifted) is False


def test_a_model_loaded_beside_an_offloaded_one_makes_it_reload_lower():
    """FLUX was placed with model offload (holds nothing between jobs); then SD3.5 medium was kept beside it."""
    placed = plan_memory(cuda(24), FLUX)
    now = plan_memory(cuda(24), FLUX, resident_bytes=MEDIUM.without_t5)
    assert must_reload(placed, now) is True


def test_a_controlnet_the_job_runs_is_room_the_plan_keeps_beside_the_transformer():
    union = int(6.15 * GIB)  # Shakker's Union-Pro, 6.6 GB in bf16
    alone = plan_memory(cuda(36), FLUX)
    with_union = plan_memory(cuda(36), FLUX, workload=Workload(addon_bytes=union))
    assert alone.placement == "gpu"  # 31.4 GiB + the reserve fit 35.6 GiB
    assert with_union.placement == "model_offload"  # the ControlNet's 6.1 GiB beside them do not
    assert any("with ControlNets of 6.1 GiB" in r for r in with_union.reasons)
    assert with_union.reserve_bytes >= union + GIB  # denoising: at least the 1 GiB floor beside the ControlNet
    assert must_reload(alone, with_union)
