"""The memory plan: which dtype, where the weights live, and which memory tactics to switch on.

Two halves, kept apart so the first can be tested on any machine:

* `plan_memory(device, footprint, overrides, resident_bytes=, workload=)` is pure. It reads numbers (the
  device's memory, what Easel already keeps on it, the model's weight sizes, the job's batch and size,
  the user's flags) and returns a `MemoryPlan` with one reason per choice for the log.
* `apply_memory_plan(pipe, plan, device)` carries the plan out with diffusers' public calls, one small
  function per tactic, and returns what it did; `set_vae_tactics` re-tunes VAE tiling/slicing per job.

This module is the one import for both; each part lives in its own module:

  footprint.py    ModelFootprint: weights per memory role, from file headers or the released sizes
  overrides.py    MemoryOverrides: the user's flags, checked for contradictions
  workload.py     Workload and the reserves it needs (denoising activations, VAE decode)
  plan.py         MemoryPlan, the placement ladder, and what a placed pipeline keeps on the device
  planner.py      plan_memory: the policy
  vae_choices.py  VAE tiling and slicing for one job
  apply.py        apply_memory_plan, set_vae_tactics

Nothing here imports torch at import time; `apply_memory_plan` and `torch_dtype` import what they need.
"""

from app.runtime.apply import (
    apply_memory_plan,
    set_vae_tactics,
    supports_attention_slicing,
    t5_component_name,
    torch_dtype,
)
from app.runtime.footprint import DTYPES, GB, ModelFootprint
from app.runtime.overrides import OFFLOAD_CHOICES, MemoryOverrides
from app.runtime.plan import PLACEMENTS, MemoryPlan, held_bytes
from app.runtime.planner import plan_memory
from app.runtime.workload import (
    BASE_RESERVE,
    DENOISE_ACTIVATIONS,
    VAE_DECODE_RESERVE,
    Workload,
    denoise_reserve,
    inference_reserve,
    vae_decode_reserve,
)

__all__ = [
    "BASE_RESERVE",
    "DENOISE_ACTIVATIONS",
    "DTYPES",
    "GB",
    "OFFLOAD_CHOICES",
    "PLACEMENTS",
    "VAE_DECODE_RESERVE",
    "MemoryOverrides",
    "MemoryPlan",
    "ModelFootprint",
    "Workload",
    "apply_memory_plan",
    "denoise_reserve",
    "held_bytes",
    "inference_reserve",
    "plan_memory",
    "set_vae_tactics",
    "supports_attention_slicing",
    "t5_component_name",
    "torch_dtype",
    "vae_decode_reserve",
]
