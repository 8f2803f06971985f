"""`plan_memory`: which dtype, where the weights live, and which memory tactics to switch on. Pure.

It reads numbers only: the device's memory, what Easel already keeps on it, the model's weight sizes, the
job's batch and size, and the user's flags; it returns a `MemoryPlan` with one reason per choice.

The peers this follows: Forge keeps 1024 MB free for inference and fills the rest greedily; ComfyUI
reserves 400-600 MB and keeps at least 0.8 GiB for inference, and frees the diffusion model before a VAE
decode that would not fit (diffusers does not, so resident plans also keep room for the decode); SD.Next
keeps T5 off the GPU below 24 GB; diffusers' memory guide recommends group offloading with streams over
sequential offloading where CUDA streams exist. VAE slicing and tiling cost little speed, so the plan
counts on them for big batches and big images before it offloads more weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.runtime.devices import GIB, DeviceInfo
from app.runtime.footprint import ModelFootprint
from app.runtime.overrides import MemoryOverrides
from app.runtime.plan import PLACEMENTS, MemoryPlan, gib
from app.runtime.vae_choices import choose_vae_slicing, choose_vae_tiling, resident_on_device
from app.runtime.workload import Workload, denoise_reserve, vae_decode_reserve

# --- Thresholds. Cards report a little less than their label ("24 GB" reads 23.6-24.0 GiB, "6 GB"
# 5.8-6.0 GiB), so each class boundary sits below the label it stands for.

# SD.Next: on cards under 24 GB, T5-XXL (9.5 GB) does not take VRAM unless everything fits.
T5_ON_GPU_MIN_TOTAL = 22 * GIB
# Block-level group offload holds about two transformer blocks plus the activations (FLUX at 1024²
# with streams peaked at 1.7 GiB, of which 0.46 GiB activations), and the VAE decodes after them; below
# "6 GB", or with less than that free, only layer-by-layer (sequential) offload works.
GROUP_OFFLOAD_MIN_TOTAL = int(5.5 * GIB)
GROUP_OFFLOAD_BLOCKS = int(1.25 * GIB)
# Attention slicing only helps the smallest cards and Macs under 64 GB (diffusers' MPS guide).
ATTENTION_SLICING_BELOW_TOTAL = 5 * GIB
MPS_ATTENTION_SLICING_BELOW_TOTAL = 40 * GIB

_PLACEMENT_FOR_OFFLOAD = {
    "none": "gpu",
    "model": "model_offload",
    "group": "group_offload",
    "sequential": "sequential_offload",
}


@dataclass(frozen=True)
class Sizes:
    """The numbers every choice of one plan looks at."""

    device: DeviceInfo
    weights: ModelFootprint  # at the plan's dtype
    dtype: str
    workload: Workload
    denoise_reserve: int
    decode_reserve: int  # the job's decode made as cheap as the VAE tactics allow (sliced; tiled unless forbidden)
    budget: int  # free memory less what Easel keeps on the device for other models

    @property
    def reserve(self) -> int:
        """Free memory needed when the weights stay put: denoising and decoding happen one after the other."""
        return max(self.denoise_reserve, self.decode_reserve)

    def fits(self, resident: int) -> bool:
        return resident + self.reserve <= self.budget

    def fits_one_at_a_time(self) -> bool:
        """Model offload: the transformer denoises alone, the VAE decodes alone."""
        denoise = self.weights.largest_component + self.denoise_reserve
        decode = self.weights.vae + self.decode_reserve
        return max(denoise, decode) <= self.budget

    def fits_streamed(self) -> bool:
        """Group offload: a couple of blocks beside the activations, then the resident VAE decodes."""
        return max(GROUP_OFFLOAD_BLOCKS + self.denoise_reserve, self.weights.vae + self.decode_reserve) <= self.budget


def plan_memory(
    device: DeviceInfo,
    footprint: ModelFootprint,
    overrides: MemoryOverrides = MemoryOverrides(),
    *,
    resident_bytes: int = 0,
    workload: Workload = Workload(),
) -> MemoryPlan:
    """Choose dtype, placement and memory tactics for `footprint` on `device`. Pure: no torch, no I/O.

    What fits is judged against the device's free memory, so other programs' use counts (as in ComfyUI),
    less `resident_bytes`: what Easel keeps on the device beside this model (other loaded models, upscaler
    models) and `device.free_memory` does not already show. The caller says which is which; the engine's
    manager reads memory as if Easel held nothing and passes everything that stays (see
    `app/engine/budget.py`). `workload` is the job's batch and size: its activations and VAE decode are the
    reserve. The card's total decides its class (T5 rule, small-card VAE tiling, attention slicing).
    """
    if resident_bytes < 0:
        raise ValueError(f"resident_bytes must be 0 or more; got {resident_bytes}")
    reasons: list[str] = []
    dtype = _choose_dtype(device, footprint, overrides, resident_bytes, workload, reasons)
    sizes = plan_sizes(device, footprint, dtype, overrides, resident_bytes, workload)
    reasons += _budget_reasons(device, sizes, resident_bytes)
    if device.kind == "cpu":
        placement, t5_on_cpu = _plan_cpu_placement(sizes, overrides, reasons)
    else:
        placement, t5_on_cpu = _choose_placement(sizes, overrides, reasons)
    vae_tiling = choose_vae_tiling(sizes, placement, t5_on_cpu, overrides, reasons)
    return MemoryPlan(
        dtype=dtype,
        placement=placement,
        t5_on_cpu=t5_on_cpu,
        vae_tiling=vae_tiling,
        vae_slicing=choose_vae_slicing(sizes, placement, t5_on_cpu, vae_tiling, reasons),
        attention_slicing=_choose_attention_slicing(device, reasons),
        reserve_bytes=sizes.reserve,
        reasons=tuple(reasons),
        device_kind=device.kind,
        budget_bytes=sizes.budget,
        required_bytes=sizes.weights.total + sizes.reserve,
        resident_bytes=resident_bytes,
        workload=workload,
    )


def plan_sizes(device: DeviceInfo, footprint: ModelFootprint, dtype: str, overrides: MemoryOverrides,
               resident_bytes: int, workload: Workload) -> Sizes:
    free = min(device.free_memory, device.total_memory)
    return Sizes(
        device=device,
        weights=footprint.at_dtype(dtype),
        dtype=dtype,
        workload=workload,
        denoise_reserve=denoise_reserve(device.total_memory, dtype, workload),
        decode_reserve=vae_decode_reserve(dtype, workload, sliced=True, tiled=overrides.vae_tiling is not False),
        budget=max(0, free - resident_bytes),
    )


def _budget_reasons(device: DeviceInfo, s: Sizes, resident_bytes: int) -> list[str]:
    lines = []
    if resident_bytes:
        lines.append(f"{gib(s.budget)} free for this model: {gib(resident_bytes)} of the "
                     f"{gib(min(device.free_memory, device.total_memory))} free stays with models kept loaded")
    if s.workload != Workload():
        lines.append(f"reserve {gib(s.reserve)} for {s.workload.describe()} (denoising {gib(s.denoise_reserve)}, "
                     f"decoding {gib(s.decode_reserve)})")
    return lines


def _choose_dtype(device: DeviceInfo, footprint: ModelFootprint, o: MemoryOverrides, resident_bytes: int,
                  workload: Workload, reasons: list[str]) -> str:
    if o.no_half:
        reasons.append("fp32: --no-half")
        return "float32"
    if o.force_fp16:
        reasons.append("fp16: --force-fp16")
        return "float16"
    if device.kind == "cpu":
        return _cpu_dtype(plan_sizes(device, footprint, "float32", o, resident_bytes, workload), reasons)
    if device.supports_bf16:
        reasons.append("bf16: supported natively, and FLUX/SD3.5 were trained in it")
        return "bfloat16"
    reasons.append("fp16: this GPU has no native bf16 (FLUX output differs slightly from bf16)")
    return "float16"


def _cpu_dtype(fp32: Sizes, reasons: list[str]) -> str:
    """fp32 on the CPU (fast there and exact) unless doubling the weights would not fit in RAM."""
    if fp32.fits(fp32.weights.total) or not fp32.device.supports_bf16:
        reasons.append("fp32: CPU computes fastest and exactly in fp32")
        return "float32"
    need = fp32.weights.total + fp32.reserve
    reasons.append(
        f"bf16: fp32 would need {gib(need)} of {gib(fp32.budget)} RAM (bf16 is slower on CPUs without "
        "AVX512-BF16/AMX, but swapping is slower still)"
    )
    return "bfloat16"


def _plan_cpu_placement(s: Sizes, o: MemoryOverrides, reasons: list[str]) -> tuple[str, bool]:
    if o.lowvram or o.medvram or o.offload != "auto":
        reasons.append("offload flags ignored: there is no accelerator to offload from")
    if s.fits(s.weights.total):
        reasons.append(f"CPU: weights {gib(s.weights.total)} + reserve fit in {gib(s.budget)} RAM")
    else:
        reasons.append(
            f"CPU: weights {gib(s.weights.total)} + reserve exceed {gib(s.budget)} available RAM; "
            "the system may swap"
        )
    return "cpu", False


def _choose_placement(s: Sizes, o: MemoryOverrides, reasons: list[str]) -> tuple[str, bool]:
    """The cheapest rung of the ladder that fits, starting no lower than the flags allow."""
    if o.offload != "auto":
        return _forced_placement(s, _PLACEMENT_FOR_OFFLOAD[o.offload], reasons)
    floor, why = _placement_floor(s, o)
    if why:
        reasons.append(why)
    for placement in PLACEMENTS[PLACEMENTS.index(floor) : -1]:
        if _placement_works(s, placement):
            t5_on_cpu = _t5_on_cpu(s, placement)
            reasons.append(_placement_reason(s, placement, t5_on_cpu))
            return placement, t5_on_cpu
    raise AssertionError("sequential offload always works")  # pragma: no cover


def _placement_floor(s: Sizes, o: MemoryOverrides) -> tuple[str, str]:
    """The least offloading the user allows: (placement, reason or '')."""
    if o.lowvram:
        if s.device.has_streams and _can_group_offload(s):
            return "group_offload", "--lowvram: group offload with CUDA streams (sequential's memory, faster)"
        return "sequential_offload", "--lowvram: sequential CPU offload"
    if o.medvram:
        return "model_offload", "--medvram: at least model CPU offload"
    return "gpu", ""


def _placement_works(s: Sizes, placement: str) -> bool:
    if placement == "gpu":
        return s.fits(resident_on_device(s, placement, _t5_on_cpu(s, placement)))
    if placement == "model_offload":
        # enable_model_cpu_offload swaps T5 in too: diffusers cannot leave one component on the CPU
        # under it (`_exclude_from_cpu_offload` pins a component to the accelerator instead), and
        # `maybe_free_model_hooks` re-hooks every component after each call.
        return s.fits_one_at_a_time()
    if placement == "group_offload":
        return _can_group_offload(s)
    return True


def _t5_on_cpu(s: Sizes, placement: str) -> bool:
    """SD.Next's rule: under 24 GB, T5 stays on the CPU unless everything fits.

    Only the placements that can leave one component alone honour it: all-on-device and group offload.
    Model and sequential offload are pipeline-wide in diffusers and move T5 through the GPU like the rest,
    whole (model) or a layer at a time (sequential), so it never sits there while the transformer runs.
    """
    if placement not in ("gpu", "group_offload") or s.weights.t5 == 0:
        return False
    if s.device.total_memory >= T5_ON_GPU_MIN_TOTAL:
        return False
    return not s.fits(s.weights.total)


def _can_group_offload(s: Sizes) -> bool:
    return s.device.kind in ("cuda", "mps") and s.device.total_memory >= GROUP_OFFLOAD_MIN_TOTAL and s.fits_streamed()


def _placement_reason(s: Sizes, placement: str, t5_on_cpu: bool) -> str:
    where = f"{gib(s.budget)} free"
    if placement == "gpu" and t5_on_cpu:
        return f"all on device but T5: {gib(s.weights.without_t5)} + reserve fit in {where}, T5 does not"
    if placement == "gpu":
        return f"all on device: {gib(s.weights.total)} + reserve fit in {where}"
    if placement == "model_offload":
        t5 = ", T5 swapped in only to encode" if s.device.total_memory < T5_ON_GPU_MIN_TOTAL else ""
        return (
            f"model CPU offload{t5}: all weights ({gib(s.weights.total)}) exceed {where}, "
            f"the largest component ({gib(s.weights.largest_component)}) fits"
        )
    if placement == "group_offload":
        how = "block-level with CUDA streams" if s.device.has_streams else "block-level, no streams on MPS"
        t5 = ", T5 on CPU" if t5_on_cpu else ""
        return (f"group offload ({how}{t5}): the largest component ({gib(s.weights.largest_component)}) + "
                f"{gib(s.denoise_reserve)} for denoising exceed {where}")
    return (f"sequential CPU offload: under {gib(GROUP_OFFLOAD_MIN_TOTAL)} or with {where}, only layer-by-layer "
            "offload fits")


def _forced_placement(s: Sizes, placement: str, reasons: list[str]) -> tuple[str, bool]:
    """--offload given: do as told, with a warning when it will likely run out of memory."""
    if placement == "group_offload" and not _can_group_offload(s):
        reasons.append(f"--offload group: not possible with {gib(s.budget)} free on this device; "
                       "sequential CPU offload instead")
        return "sequential_offload", False
    t5_on_cpu = _t5_on_cpu(s, placement)
    reasons.append(f"{placement.replace('_', ' ')}: --offload {_offload_flag(placement)}")
    resident = resident_on_device(s, placement, t5_on_cpu)
    if placement == "gpu" and not s.fits(resident):
        reasons.append(
            f"warning: keeping {gib(resident)} on the device with {gib(s.budget)} free may run out of memory"
        )
    if placement == "model_offload" and not s.fits_one_at_a_time():
        reasons.append(
            f"warning: the largest component ({gib(s.weights.largest_component)}) does not fit in "
            f"{gib(s.budget)} free; model offload may run out of memory"
        )
    return placement, t5_on_cpu


def _offload_flag(placement: str) -> str:
    return {v: k for k, v in _PLACEMENT_FOR_OFFLOAD.items()}[placement]


def _choose_attention_slicing(device: DeviceInfo, reasons: list[str]) -> bool:
    if device.kind == "mps" and device.total_memory < MPS_ATTENTION_SLICING_BELOW_TOTAL:
        reasons.append("attention slicing: Mac under 64 GB (diffusers' MPS advice), where the pipeline has it")
        return True
    if device.kind == "cuda" and device.total_memory < ATTENTION_SLICING_BELOW_TOTAL:
        reasons.append(f"attention slicing: under {gib(ATTENTION_SLICING_BELOW_TOTAL)}, where the pipeline has it")
        return True
    return False
