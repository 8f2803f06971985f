"""`MemoryPlan`: the planner's answer, and what a pipeline placed by it keeps on the device.

The placements form a ladder, cheapest first (each step trades speed for memory):

  gpu                 every component resident on the device            (ComfyUI/Forge "normal vram")
  model_offload       whole components swapped in one at a time          `pipe.enable_model_cpu_offload`
  group_offload       transformer blocks streamed in, one block ahead    `enable_group_offload`, CUDA streams
  sequential_offload  each layer streamed in when it runs                `pipe.enable_sequential_cpu_offload`
  cpu                 no accelerator: everything in RAM
"""

from __future__ import annotations

from dataclasses import dataclass

from app.runtime.devices import GIB
from app.runtime.footprint import DTYPES, ModelFootprint
from app.runtime.workload import Workload

PLACEMENTS = ("gpu", "model_offload", "group_offload", "sequential_offload", "cpu")

_SHORT_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
_MEMORY_WORD = {"cuda": "VRAM", "mps": "unified", "cpu": "RAM"}


def gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"


@dataclass(frozen=True)
class MemoryPlan:
    """What `apply_memory_plan` will do, with one short reason per choice for the log.

    `budget_bytes` is the memory the plan was made for: the device's free memory (free VRAM, Metal working
    set, or available RAM) less `resident_bytes`, what other models and upscalers Easel keeps loaded hold
    on the device. `required_bytes` is what keeping everything on the device would take (weights at
    `dtype` + reserve). `reserve_bytes` is what stays free for `workload`'s activations when everything is
    resident: the larger of the denoising reserve and the VAE decode, as cheap as the VAE tactics make it.
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
    resident_bytes: int = 0
    workload: Workload = Workload()

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
        memory = _MEMORY_WORD.get(self.device_kind, "memory")
        beside = f" beside {gib(self.resident_bytes)} kept loaded" if self.resident_bytes else ""
        parts.append(f"({gib(self.budget_bytes)} {memory} free{beside}, needs {gib(self.required_bytes)})")
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

    @property
    def offload_rank(self) -> tuple[int, bool]:
        """How far down the ladder the plan places the weights; T5 on the CPU is a half step further."""
        return PLACEMENTS.index(self.placement), self.t5_on_cpu


def held_bytes(plan: MemoryPlan, footprint: ModelFootprint) -> int:
    """Bytes a pipeline placed by `plan` keeps on its device between jobs (what a reading then shows).

    Model and sequential offload hand every component back to the CPU after each call; group offload keeps
    only the VAE (apply_memory_plan places it whole); on the CPU, RAM is the device and holds everything.
    """
    weights = footprint.at_dtype(plan.dtype)
    on_device = weights.without_t5 if plan.t5_on_cpu else weights.total
    return {
        "gpu": on_device,
        "model_offload": 0,
        "group_offload": weights.vae,
        "sequential_offload": 0,
        "cpu": weights.total,
    }[plan.placement]
