"""The memory plan: which dtype, where the weights live, and which memory tactics to switch on.

Two halves, kept apart so the first can be tested on any machine:

* `plan_memory(device, footprint, overrides)` is pure. It reads numbers (the device's memory, the model's
  weight sizes, the user's flags) and returns a `MemoryPlan` with one reason per choice for the log.
* `apply_memory_plan(pipe, plan, device)` carries the plan out with diffusers' public calls, one small
  function per tactic, and returns what it did.

The ladder, cheapest first (each step trades speed for memory):

  gpu                 every component resident on the device            (ComfyUI/Forge "normal vram")
  model_offload       whole components swapped in one at a time          `pipe.enable_model_cpu_offload`
  group_offload       transformer blocks streamed in, one block ahead    `enable_group_offload`, CUDA streams
  sequential_offload  each layer streamed in when it runs                `pipe.enable_sequential_cpu_offload`

The peers this follows: Forge keeps 1024 MB free for inference and fills the rest greedily; ComfyUI
reserves 400-600 MB and keeps at least 0.8 GiB for inference, and frees the diffusion model before a VAE
decode that would not fit (diffusers does not, so resident plans also keep room for the decode); SD.Next
keeps T5 off the GPU below 24 GB; diffusers' memory guide recommends group offloading with streams over
sequential offloading where CUDA streams exist.

Nothing here imports torch at import time; `apply_memory_plan` and `torch_dtype` import what they need.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.runtime.devices import GIB, DeviceInfo
from app.runtime.weights import sixteen_bit_size

GB = 1_000_000_000  # model cards quote file sizes in decimal gigabytes

DTYPES = ("bfloat16", "float16", "float32")
PLACEMENTS = ("gpu", "model_offload", "group_offload", "sequential_offload", "cpu")
OFFLOAD_CHOICES = ("auto", "none", "model", "group", "sequential")

# --- Thresholds. Cards report a little less than their label ("24 GB" reads 23.6-24.0 GiB, "6 GB"
# 5.8-6.0 GiB), so each class boundary sits below the label it stands for.

# Activations, measured with random weights of the released sizes in bf16, batch 1, on an H200:
#   FLUX transformer forward   0.46 GiB over its weights at 1024², 0.96 GiB at 1536²
#   16-channel VAE decode      2.38 GiB at 1024², 5.35 GiB at 1536²
# Denoising: Forge's default inference memory of 1024 MB covers up to about 1536².
BASE_RESERVE = 1 * GIB
# Decoding: diffusers' VAE tiling only engages above the VAE's sample_size (1024 px for FLUX and
# SD3.5), so a 1024² decode always needs this much beside whatever stays resident. 16-bit figure;
# fp32 doubles it.
VAE_DECODE_RESERVE = int(2.5 * GIB)
# Above 24 GiB, a further 5% of the excess: users of big cards run batches and larger images.
BIG_CARD_RESERVE_FROM = 24 * GIB
BIG_CARD_RESERVE_FRACTION = 0.05
# SD.Next: on cards under 24 GB, T5-XXL (9.5 GB) does not take VRAM unless everything fits.
T5_ON_GPU_MIN_TOTAL = 22 * GIB
# Block-level group offload holds about two transformer blocks plus the activations (FLUX at 1024²
# with streams peaked at 1.7 GiB), and the VAE decodes after them; below "6 GB" that no longer leaves
# room, and only layer-by-layer (sequential) offload works.
GROUP_OFFLOAD_MIN_TOTAL = int(5.5 * GIB)
# A 1536² decode needs 5.4 GiB; on cards under "12 GB", tile decodes above 1024² (where tiling engages).
VAE_TILING_BELOW_TOTAL = int(11.5 * GIB)
# Attention slicing only helps the smallest cards and Macs under 64 GB (diffusers' MPS guide).
ATTENTION_SLICING_BELOW_TOTAL = 5 * GIB
MPS_ATTENTION_SLICING_BELOW_TOTAL = 40 * GIB
# Slice the VAE over a batch unless this much is left over after the weights and the reserve.
VAE_SLICING_SPARE = 1 * GIB

_PLACEMENT_FOR_OFFLOAD = {
    "none": "gpu",
    "model": "model_offload",
    "group": "group_offload",
    "sequential": "sequential_offload",
}
_SHORT_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
_BYTES_PER_ELEMENT = {"bfloat16": 2, "float16": 2, "float32": 4}


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


# ---------------------------------------------------------------------------------------------------
# Model footprint


@dataclass(frozen=True)
class ModelFootprint:
    """Bytes of a model's weights at 16-bit precision, per role.

    `text_encoders` is the CLIP encoders together (CLIP-L for FLUX, CLIP-L and CLIP-G for SD3.5); `t5` is
    T5-XXL, kept apart because the plan may leave it on the CPU.
    """

    transformer: int
    text_encoders: int
    t5: int
    vae: int

    ROLES = ("transformer", "text_encoders", "t5", "vae")

    @property
    def total(self) -> int:
        return self.transformer + self.text_encoders + self.t5 + self.vae

    @property
    def largest_component(self) -> int:
        """What model offload must hold at once: it swaps whole components in one at a time."""
        return max(self.transformer, self.text_encoders, self.t5, self.vae)

    @property
    def without_t5(self) -> int:
        return self.total - self.t5

    def at_dtype(self, dtype: str) -> ModelFootprint:
        """The same weights in `dtype` (float32 doubles them)."""
        factor = _BYTES_PER_ELEMENT[dtype] / 2
        return ModelFootprint(
            transformer=int(self.transformer * factor),
            text_encoders=int(self.text_encoders * factor),
            t5=int(self.t5 * factor),
            vae=int(self.vae * factor),
        )

    @classmethod
    def for_variant(cls, variant: str) -> ModelFootprint:
        """The released models' sizes in bf16, for planning before any file is found."""
        try:
            return _RELEASED_FOOTPRINTS[variant]
        except KeyError:
            known = ", ".join(_RELEASED_FOOTPRINTS)
            raise ValueError(f"unknown model variant {variant!r}; known variants: {known}") from None

    @classmethod
    def from_files(cls, parts: Mapping[str, Iterable[str | Path]]) -> ModelFootprint:
        """Sum the files of each role, normalised to 16 bits from their safetensors headers.

        `parts` maps a role ('transformer', 'text_encoders', 't5', 'vae') to its files (shards, or one
        file per CLIP encoder). A missing role or file counts 0; no weights are read.
        """
        unknown = set(parts) - set(cls.ROLES)
        if unknown:
            raise ValueError(f"unknown footprint roles {sorted(unknown)}; roles are {', '.join(cls.ROLES)}")
        sizes = {role: sum(sixteen_bit_size(Path(p)) for p in parts.get(role, ())) for role in cls.ROLES}
        return cls(**sizes)


_FLUX_TRANSFORMER = int(23.8 * GB)
_SD35_LARGE_TRANSFORMER = int(16.3 * GB)
_SD35_MEDIUM_TRANSFORMER = int(4.9 * GB)
_CLIP_L = int(0.25 * GB)
_CLIP_G = int(1.4 * GB)
_T5_XXL = int(9.5 * GB)
_VAE_16_CHANNELS = int(0.17 * GB)  # FLUX and SD3.5 share the 16-channel VAE layout

_RELEASED_FOOTPRINTS = {
    "flux-schnell": ModelFootprint(_FLUX_TRANSFORMER, _CLIP_L, _T5_XXL, _VAE_16_CHANNELS),
    "flux-dev": ModelFootprint(_FLUX_TRANSFORMER, _CLIP_L, _T5_XXL, _VAE_16_CHANNELS),
    "sd3.5-large": ModelFootprint(_SD35_LARGE_TRANSFORMER, _CLIP_L + _CLIP_G, _T5_XXL, _VAE_16_CHANNELS),
    "sd3.5-large-turbo": ModelFootprint(_SD35_LARGE_TRANSFORMER, _CLIP_L + _CLIP_G, _T5_XXL, _VAE_16_CHANNELS),
    "sd3.5-medium": ModelFootprint(_SD35_MEDIUM_TRANSFORMER, _CLIP_L + _CLIP_G, _T5_XXL, _VAE_16_CHANNELS),
}


# ---------------------------------------------------------------------------------------------------
# User overrides


@dataclass(frozen=True)
class MemoryOverrides:
    """The user's memory flags (A1111/Forge names). Contradictory flags raise ValueError on construction.

    `lowvram` asks for at least group offload on CUDA (block-level with streams: about the memory of
    sequential offload at a fraction of its cost) and sequential offload elsewhere. `medvram` asks for at
    least model offload. `offload` picks the placement outright ('none' keeps everything on the device).
    `vae_tiling` None lets the plan decide.
    """

    lowvram: bool = False
    medvram: bool = False
    force_fp16: bool = False
    no_half: bool = False
    offload: str = "auto"
    vae_tiling: bool | None = None

    def __post_init__(self) -> None:
        _check_overrides(self)

    @classmethod
    def from_flags(
        cls,
        *,
        lowvram: bool = False,
        medvram: bool = False,
        force_fp16: bool = False,
        no_half: bool = False,
        offload: str | None = "auto",
        vae_tiling: bool | None = None,
    ) -> MemoryOverrides:
        """Build from CLI/settings values; `offload` is case-insensitive and None means 'auto'."""
        return cls(
            lowvram=bool(lowvram),
            medvram=bool(medvram),
            force_fp16=bool(force_fp16),
            no_half=bool(no_half),
            offload=(offload or "auto").strip().lower(),
            vae_tiling=vae_tiling,
        )


def _check_overrides(o: MemoryOverrides) -> None:
    if o.offload not in OFFLOAD_CHOICES:
        raise ValueError(f"--offload must be one of {', '.join(OFFLOAD_CHOICES)}; got {o.offload!r}")
    if o.lowvram and o.medvram:
        raise ValueError("--lowvram and --medvram contradict each other: pass one of them")
    if o.force_fp16 and o.no_half:
        raise ValueError("--force-fp16 and --no-half contradict each other: pass one of them")
    if o.lowvram and o.offload in ("none", "model"):
        raise ValueError(f"--lowvram asks for group or sequential offload; --offload {o.offload} contradicts it")
    if o.medvram and o.offload == "none":
        raise ValueError("--medvram asks for model offload or more; --offload none contradicts it")


# ---------------------------------------------------------------------------------------------------
# The plan


@dataclass(frozen=True)
class MemoryPlan:
    """What `apply_memory_plan` will do, with one short reason per choice for the log.

    `budget_bytes` is the memory the plan was made for (free VRAM, Metal working set, or available RAM);
    `required_bytes` is what keeping everything on the device would take (weights at `dtype` + reserve).
    `reserve_bytes` is what stays free for activations when everything is resident: the larger of the
    denoising reserve and a 1024² VAE decode.
    """

    dtype: str
    placement: str
    t5_on_cpu: bool
    vae_tiling: bool
    vae_slicing: bool
    attention_slicing: bool
    reserve_bytes: int
    reasons: tuple[str, ...] = ()
    device_kind: str = "cuda"
    budget_bytes: int = 0
    required_bytes: int = 0

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}; got {self.placement!r}")

    def describe(self) -> str:
        """One line, e.g. 'bf16 · model CPU offload · VAE slicing · (23.6 GiB VRAM free, needs 33.9 GiB)'."""
        parts = [_SHORT_DTYPE[self.dtype], self._placement_label()]
        flags = (
            (self.t5_on_cpu, "T5 on CPU"),
            (self.vae_tiling, "VAE tiling"),
            (self.vae_slicing, "VAE slicing"),
            (self.attention_slicing, "attention slicing"),
        )
        parts += [label for on, label in flags if on]
        memory = {"cuda": "VRAM", "mps": "unified", "cpu": "RAM"}.get(self.device_kind, "memory")
        parts.append(f"({_gib(self.budget_bytes)} {memory} free, needs {_gib(self.required_bytes)})")
        return " · ".join(parts)

    def _placement_label(self) -> str:
        device = {"cuda": "GPU", "mps": "MPS"}.get(self.device_kind, "GPU")
        return {
            "gpu": f"all on {device}",
            "model_offload": "model CPU offload",
            "group_offload": "group offload" + (" (CUDA streams)" if self.device_kind == "cuda" else ""),
            "sequential_offload": "sequential CPU offload",
            "cpu": "CPU",
        }[self.placement]


@dataclass(frozen=True)
class _Sizes:
    """The numbers every choice of one plan looks at."""

    device: DeviceInfo
    weights: ModelFootprint  # at the plan's dtype
    denoise_reserve: int
    decode_reserve: int
    budget: int

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


def plan_memory(
    device: DeviceInfo, footprint: ModelFootprint, overrides: MemoryOverrides = MemoryOverrides()
) -> MemoryPlan:
    """Choose dtype, placement and memory tactics for `footprint` on `device`. Pure: no torch, no I/O.

    What fits is judged against the device's free memory, so other programs' use counts (as in ComfyUI):
    detect the device after unloading the previous model. The card's total decides its class (T5 rule,
    VAE tiling, whether group offload has room).
    """
    reasons: list[str] = []
    dtype = _choose_dtype(device, footprint, overrides, reasons)
    sizes = _sizes(device, footprint, dtype)
    if device.kind == "cpu":
        placement, t5_on_cpu = _plan_cpu_placement(sizes, overrides, reasons)
    else:
        placement, t5_on_cpu = _choose_placement(sizes, overrides, reasons)
    return MemoryPlan(
        dtype=dtype,
        placement=placement,
        t5_on_cpu=t5_on_cpu,
        vae_tiling=_choose_vae_tiling(device, overrides, reasons),
        vae_slicing=_choose_vae_slicing(sizes, placement, t5_on_cpu, reasons),
        attention_slicing=_choose_attention_slicing(device, reasons),
        reserve_bytes=sizes.reserve,
        reasons=tuple(reasons),
        device_kind=device.kind,
        budget_bytes=sizes.budget,
        required_bytes=sizes.weights.total + sizes.reserve,
    )


def _sizes(device: DeviceInfo, footprint: ModelFootprint, dtype: str) -> _Sizes:
    return _Sizes(
        device=device,
        weights=footprint.at_dtype(dtype),
        denoise_reserve=inference_reserve(device.total_memory),
        decode_reserve=vae_decode_reserve(dtype),
        budget=min(device.free_memory, device.total_memory),
    )


def inference_reserve(total_memory: int) -> int:
    """Memory kept free for activations: 1 GiB (Forge's default), plus 5% of whatever is above 24 GiB.

    ComfyUI keeps at least 0.8 GiB for inference and 400-600 MB for the driver; the driver's share is
    already missing from the free memory the plan starts from, so it is not counted twice.
    """
    extra = max(0, total_memory - BIG_CARD_RESERVE_FROM) * BIG_CARD_RESERVE_FRACTION
    return BASE_RESERVE + int(extra)


def vae_decode_reserve(dtype: str) -> int:
    """Memory a 1024² VAE decode needs beside the weights, in `dtype`."""
    return VAE_DECODE_RESERVE * _BYTES_PER_ELEMENT[dtype] // 2


def _choose_dtype(device: DeviceInfo, footprint: ModelFootprint, o: MemoryOverrides, reasons: list[str]) -> str:
    if o.no_half:
        reasons.append("fp32: --no-half")
        return "float32"
    if o.force_fp16:
        reasons.append("fp16: --force-fp16")
        return "float16"
    if device.kind == "cpu":
        return _cpu_dtype(device, footprint, reasons)
    if device.supports_bf16:
        reasons.append("bf16: supported natively, and FLUX/SD3.5 were trained in it")
        return "bfloat16"
    reasons.append("fp16: this GPU has no native bf16 (FLUX output differs slightly from bf16)")
    return "float16"


def _cpu_dtype(device: DeviceInfo, footprint: ModelFootprint, reasons: list[str]) -> str:
    """fp32 on the CPU (fast there and exact) unless doubling the weights would not fit in RAM."""
    fp32 = _sizes(device, footprint, "float32")
    if fp32.fits(fp32.weights.total) or not device.supports_bf16:
        reasons.append("fp32: CPU computes fastest and exactly in fp32")
        return "float32"
    need = fp32.weights.total + fp32.reserve
    reasons.append(
        f"bf16: fp32 would need {_gib(need)} of {_gib(fp32.budget)} RAM (bf16 is slower on CPUs without "
        "AVX512-BF16/AMX, but swapping is slower still)"
    )
    return "bfloat16"


def _plan_cpu_placement(s: _Sizes, o: MemoryOverrides, reasons: list[str]) -> tuple[str, bool]:
    if o.lowvram or o.medvram or o.offload != "auto":
        reasons.append("offload flags ignored: there is no accelerator to offload from")
    if s.fits(s.weights.total):
        reasons.append(f"CPU: weights {_gib(s.weights.total)} + reserve fit in {_gib(s.budget)} RAM")
    else:
        reasons.append(
            f"CPU: weights {_gib(s.weights.total)} + reserve exceed {_gib(s.budget)} available RAM; "
            "the system may swap"
        )
    return "cpu", False


def _choose_placement(s: _Sizes, o: MemoryOverrides, reasons: list[str]) -> tuple[str, bool]:
    """The cheapest rung of the ladder that fits, starting no lower than the flags allow."""
    if o.offload != "auto":
        return _forced_placement(s, _PLACEMENT_FOR_OFFLOAD[o.offload], reasons)
    floor, why = _placement_floor(s.device, o)
    if why:
        reasons.append(why)
    for placement in PLACEMENTS[PLACEMENTS.index(floor) : -1]:
        if _placement_works(s, placement):
            t5_on_cpu = _t5_on_cpu(s, placement)
            reasons.append(_placement_reason(s, placement, t5_on_cpu))
            return placement, t5_on_cpu
    raise AssertionError("sequential offload always works")  # pragma: no cover


def _placement_floor(device: DeviceInfo, o: MemoryOverrides) -> tuple[str, str]:
    """The least offloading the user allows: (placement, reason or '')."""
    if o.lowvram:
        if _can_stream(device) and device.total_memory >= GROUP_OFFLOAD_MIN_TOTAL:
            return "group_offload", "--lowvram: group offload with CUDA streams (sequential's memory, faster)"
        return "sequential_offload", "--lowvram: sequential CPU offload"
    if o.medvram:
        return "model_offload", "--medvram: at least model CPU offload"
    return "gpu", ""


def _placement_works(s: _Sizes, placement: str) -> bool:
    if placement == "gpu":
        return s.fits(_resident_on_device(s, placement))
    if placement == "model_offload":
        # enable_model_cpu_offload swaps T5 in too: diffusers cannot leave one component on the CPU
        # under it (`_exclude_from_cpu_offload` pins a component to the accelerator instead), and
        # `maybe_free_model_hooks` re-hooks every component after each call.
        return s.fits_one_at_a_time()
    if placement == "group_offload":
        return _can_group_offload(s.device)
    return True


def _resident_on_device(s: _Sizes, placement: str) -> int:
    return s.weights.without_t5 if _t5_on_cpu(s, placement) else s.weights.total


def _t5_on_cpu(s: _Sizes, placement: str) -> bool:
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


def _can_stream(device: DeviceInfo) -> bool:
    """CUDA streams overlap the next block's copy with this block's compute; MPS has no such streams."""
    return device.kind == "cuda"


def _can_group_offload(device: DeviceInfo) -> bool:
    return device.kind in ("cuda", "mps") and device.total_memory >= GROUP_OFFLOAD_MIN_TOTAL


def _placement_reason(s: _Sizes, placement: str, t5_on_cpu: bool) -> str:
    where = f"{_gib(s.budget)} free"
    if placement == "gpu" and t5_on_cpu:
        return f"all on device but T5: {_gib(s.weights.without_t5)} + reserve fit in {where}, T5 does not"
    if placement == "gpu":
        return f"all on device: {_gib(s.weights.total)} + reserve fit in {where}"
    if placement == "model_offload":
        t5 = ", T5 swapped in only to encode" if s.device.total_memory < T5_ON_GPU_MIN_TOTAL else ""
        return (
            f"model CPU offload{t5}: all weights ({_gib(s.weights.total)}) exceed {where}, "
            f"the largest component ({_gib(s.weights.largest_component)}) fits"
        )
    if placement == "group_offload":
        how = "block-level with CUDA streams" if _can_stream(s.device) else "block-level, no streams on MPS"
        t5 = ", T5 on CPU" if t5_on_cpu else ""
        return f"group offload ({how}{t5}): the transformer ({_gib(s.weights.transformer)}) exceeds {where}"
    return f"sequential CPU offload: under {_gib(GROUP_OFFLOAD_MIN_TOTAL)}, only layer-by-layer offload fits"


def _forced_placement(s: _Sizes, placement: str, reasons: list[str]) -> tuple[str, bool]:
    """--offload given: do as told, with a warning when it will likely run out of memory."""
    if placement == "group_offload" and not _can_group_offload(s.device):
        reasons.append("--offload group: not possible on this device; sequential CPU offload instead")
        return "sequential_offload", False
    t5_on_cpu = _t5_on_cpu(s, placement)
    reasons.append(f"{placement.replace('_', ' ')}: --offload {_offload_flag(placement)}")
    if placement == "gpu" and not s.fits(_resident_on_device(s, placement)):
        reasons.append(
            f"warning: keeping {_gib(_resident_on_device(s, placement))} on the device with {_gib(s.budget)} "
            "free may run out of memory"
        )
    if placement == "model_offload" and not s.fits_one_at_a_time():
        reasons.append(
            f"warning: the largest component ({_gib(s.weights.largest_component)}) does not fit in "
            f"{_gib(s.budget)} free; model offload may run out of memory"
        )
    return placement, t5_on_cpu


def _offload_flag(placement: str) -> str:
    return {v: k for k, v in _PLACEMENT_FOR_OFFLOAD.items()}[placement]


def _choose_vae_tiling(device: DeviceInfo, o: MemoryOverrides, reasons: list[str]) -> bool:
    if o.vae_tiling is not None:
        reasons.append(f"VAE tiling {'on' if o.vae_tiling else 'off'}: set by the user")
        return o.vae_tiling
    if device.kind != "cpu" and device.total_memory < VAE_TILING_BELOW_TOTAL:
        reasons.append(f"VAE tiling: under {_gib(VAE_TILING_BELOW_TOTAL)}, large decodes would not fit")
        return True
    return False


def _choose_vae_slicing(s: _Sizes, placement: str, t5_on_cpu: bool, reasons: list[str]) -> bool:
    """Decode a batch one image at a time unless everything is resident with room to spare."""
    if placement in ("gpu", "cpu"):
        resident = s.weights.without_t5 if t5_on_cpu else s.weights.total
        if s.budget - resident - s.reserve >= VAE_SLICING_SPARE:
            return False
    reasons.append("VAE slicing: batches decode one image at a time")
    return True


def _choose_attention_slicing(device: DeviceInfo, reasons: list[str]) -> bool:
    if device.kind == "mps" and device.total_memory < MPS_ATTENTION_SLICING_BELOW_TOTAL:
        reasons.append("attention slicing: Mac under 64 GB (diffusers' MPS advice), where the pipeline has it")
        return True
    if device.kind == "cuda" and device.total_memory < ATTENTION_SLICING_BELOW_TOTAL:
        reasons.append(f"attention slicing: under {_gib(ATTENTION_SLICING_BELOW_TOTAL)}, where the pipeline has it")
        return True
    return False


def torch_dtype(plan: MemoryPlan) -> Any:
    """The torch dtype the engine loads the pipeline in (`dtype=` of from_pretrained/from_single_file)."""
    import torch

    return getattr(torch, plan.dtype)


# ---------------------------------------------------------------------------------------------------
# Applying a plan


def apply_memory_plan(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    """Carry out `plan` on a freshly loaded pipeline; returns one line per action for the log.

    The pipeline must be loaded in the plan's dtype with its weights on the CPU (the engine loads that
    way), and the plan is applied once: diffusers has no public call that removes group offloading, so a
    different plan means reloading. Do not call `pipe.to()` afterwards; it would undo the placement.

    With `plan.t5_on_cpu`, T5 runs on the CPU behind a hook that moves its inputs there and its output
    back, so the pipeline's own `encode_prompt` works unchanged (FLUX and SD3 alike). Engines that cache
    prompt embeddings may call `pipe.encode_prompt(...)` themselves: the result lands on the execution
    device as usual.
    """
    done = _place(pipe, plan, device)
    done += _apply_vae_tiling(pipe, plan)
    done += _apply_vae_slicing(pipe, plan)
    done += _apply_attention_slicing(pipe, plan)
    return done


def _place(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    tactics = {
        "gpu": _place_on_device,
        "model_offload": _enable_model_offload,
        "group_offload": _enable_group_offload,
        "sequential_offload": _enable_sequential_offload,
        "cpu": _place_on_cpu,
    }
    return tactics[plan.placement](pipe, plan, device)


def _place_on_device(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    t5_name = t5_component_name(pipe) if plan.t5_on_cpu else None
    if t5_name is None:
        pipe.to(device.torch_device)
        return [f"pipe.to({device.torch_device!r})"] + _no_t5_note(plan)
    done = _keep_on_cpu(pipe, t5_name)
    for name, module in _modules(pipe):
        if name != t5_name:
            module.to(device.torch_device)
            done.append(f"{name}.to({device.torch_device!r})")
    return done


def _place_on_cpu(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    pipe.to("cpu")
    return ["pipe.to('cpu')"]


def _enable_model_offload(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    _refuse_t5_on_cpu(plan)
    pipe.enable_model_cpu_offload(device=device.torch_device)
    return [f"pipe.enable_model_cpu_offload(device={device.torch_device!r})"]


def _enable_sequential_offload(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    _refuse_t5_on_cpu(plan)
    pipe.enable_sequential_cpu_offload(device=device.torch_device)
    return [f"pipe.enable_sequential_cpu_offload(device={device.torch_device!r})"]


def _refuse_t5_on_cpu(plan: MemoryPlan) -> None:
    if plan.t5_on_cpu:
        raise ValueError(
            f"{plan.placement} cannot keep T5 on the CPU: diffusers offloads every pipeline component "
            "(and `_exclude_from_cpu_offload` pins a component to the accelerator, not the CPU)"
        )


def _enable_group_offload(pipe: Any, plan: MemoryPlan, device: DeviceInfo) -> list[str]:
    """Per component: diffusers models by block, transformers text encoders by layer, VAE resident.

    The pipeline-wide `pipe.enable_group_offload` would give every component the same settings, but
    block-level offload of a text encoder (transformers models have no top-level block list) moves the
    whole encoder at once, and T5 may have to stay on the CPU.
    """
    t5_name = t5_component_name(pipe) if plan.t5_on_cpu else None
    done = [] if t5_name else _no_t5_note(plan)
    for name, module in _modules(pipe):
        if name == t5_name:
            done += _keep_on_cpu(pipe, name)
        elif name == "vae":
            # 0.17 GB: streaming it saves nothing, and diffusers warns that streamed offload of a VAE
            # misbehaves when its first pass is tiled.
            module.to(device.torch_device)
            done.append(f"vae.to({device.torch_device!r})")
        elif _supports_block_offload(module):
            done.append(_group_offload_blocks(name, module, device))
        else:
            done.append(_group_offload_leaves(name, module, device))
    return done


def _supports_block_offload(module: Any) -> bool:
    return hasattr(module, "enable_group_offload") and getattr(module, "_supports_group_offloading", False)


def _group_offload_blocks(name: str, module: Any, device: DeviceInfo) -> str:
    """One transformer block on the device at a time; with CUDA streams the next one loads meanwhile."""
    use_stream = _can_stream(device)
    module.enable_group_offload(
        onload_device=_torch_device(device.torch_device),
        offload_device=_torch_device("cpu"),
        offload_type="block_level",
        num_blocks_per_group=1,
        use_stream=use_stream,
    )
    return f"{name}.enable_group_offload(block_level, num_blocks_per_group=1, use_stream={use_stream})"


def _group_offload_leaves(name: str, module: Any, device: DeviceInfo) -> str:
    """Text encoders (transformers models, no `enable_group_offload`) go layer by layer."""
    from diffusers.hooks import apply_group_offloading

    use_stream = _can_stream(device)
    apply_group_offloading(
        module,
        onload_device=_torch_device(device.torch_device),
        offload_device=_torch_device("cpu"),
        offload_type="leaf_level",
        use_stream=use_stream,
    )
    return f"apply_group_offloading({name}, leaf_level, use_stream={use_stream})"


def _keep_on_cpu(pipe: Any, name: str) -> list[str]:
    """Leave one encoder on the CPU while the rest of the pipeline runs on the accelerator.

    An accelerate `AlignDevicesHook(execution_device='cpu', io_same_device=True)` moves the encoder's
    inputs to the CPU and its output back to where the inputs came from, so the pipeline's own
    `encode_prompt` works although it sends token ids to the execution device. Listing the encoder in the
    instance's `_exclude_from_cpu_offload` keeps `pipe._execution_device` from reporting the CPU.
    """
    from accelerate.hooks import AlignDevicesHook, add_hook_to_module

    module = getattr(pipe, name)
    module.to("cpu")
    add_hook_to_module(module, AlignDevicesHook(execution_device="cpu", io_same_device=True))
    pipe._exclude_from_cpu_offload = [*pipe._exclude_from_cpu_offload, name]
    return [f"{name} kept on CPU (inputs moved to it, outputs moved back)"]


def _no_t5_note(plan: MemoryPlan) -> list[str]:
    return ["T5 on CPU: this pipeline has no T5 encoder, nothing to keep"] if plan.t5_on_cpu else []


def _apply_vae_tiling(pipe: Any, plan: MemoryPlan) -> list[str]:
    if not plan.vae_tiling:
        return []
    if getattr(pipe, "vae", None) is None:
        return ["VAE tiling skipped: the pipeline has no VAE"]
    pipe.vae.enable_tiling()
    return ["vae.enable_tiling()"]


def _apply_vae_slicing(pipe: Any, plan: MemoryPlan) -> list[str]:
    if not plan.vae_slicing:
        return []
    if getattr(pipe, "vae", None) is None:
        return ["VAE slicing skipped: the pipeline has no VAE"]
    pipe.vae.enable_slicing()
    return ["vae.enable_slicing()"]


def _apply_attention_slicing(pipe: Any, plan: MemoryPlan) -> list[str]:
    if not plan.attention_slicing:
        return []
    if not supports_attention_slicing(pipe):
        return [
            f"attention slicing skipped: {type(pipe).__name__}'s components have no sliced attention "
            "(their SDPA attention is already memory-efficient)"
        ]
    pipe.enable_attention_slicing()
    return ["pipe.enable_attention_slicing()"]


def supports_attention_slicing(pipe: Any) -> bool:
    """Whether `pipe.enable_attention_slicing()` would change anything.

    Every DiffusionPipeline has the method, but it only reaches components that define
    `set_attention_slice` (UNets, ControlNets). FLUX and SD3 transformers in diffusers 0.42 do not, so
    on their pipelines the call is a silent no-op.
    """
    if not callable(getattr(pipe, "enable_attention_slicing", None)):
        return False
    return any(hasattr(module, "set_attention_slice") for _, module in _modules(pipe))


def t5_component_name(pipe: Any) -> str | None:
    """The pipeline attribute holding T5 ('text_encoder_2' in FLUX, 'text_encoder_3' in SD3), if loaded."""
    for name, module in _modules(pipe):
        if name.startswith("text_encoder") and "T5" in type(module).__name__:
            return name
    return None


def _modules(pipe: Any) -> list[tuple[str, Any]]:
    """The pipeline's torch modules by component name, in the pipeline's own order."""
    import torch

    return [(name, c) for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)]


def _torch_device(name: str) -> Any:
    import torch

    return torch.device(name)
