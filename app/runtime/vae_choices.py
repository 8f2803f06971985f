"""The plan's VAE tactics for one job: tile large images, slice large batches.

Both are cheap (a little speed) and can be switched per job on a loaded pipeline, unlike the placement,
so the planner counts on them before it offloads more weights: placement is judged with the decode made
as cheap as they make it, and these choices then switch on what that assumed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.runtime.devices import GIB
from app.runtime.overrides import MemoryOverrides
from app.runtime.plan import gib
from app.runtime.workload import vae_decode_reserve

if TYPE_CHECKING:
    from app.runtime.planner import Sizes

# A 1536² decode needs 5.4 GiB; on cards under "12 GB", tile decodes above 1024² (where tiling engages).
VAE_TILING_BELOW_TOTAL = int(11.5 * GIB)
# Slice the VAE over a batch unless this much is left over after the weights and the reserve.
VAE_SLICING_SPARE = 1 * GIB


def resident_on_device(s: Sizes, placement: str, t5_on_cpu: bool) -> int:
    """Weights that stay on the device while the job runs (all of them when the device is the CPU)."""
    if placement == "cpu":
        return s.weights.total
    if placement == "gpu":
        return s.weights.without_t5 if t5_on_cpu else s.weights.total
    return s.weights.vae  # offloaded: the other components are back on the CPU when the VAE decodes


def choose_vae_tiling(s: Sizes, placement: str, t5_on_cpu: bool, o: MemoryOverrides, reasons: list[str]) -> bool:
    if o.vae_tiling is not None:
        reasons.append(f"VAE tiling {'on' if o.vae_tiling else 'off'}: set by the user")
        return o.vae_tiling
    if s.device.kind != "cpu" and s.device.total_memory < VAE_TILING_BELOW_TOTAL:
        reasons.append(f"VAE tiling: under {gib(VAE_TILING_BELOW_TOTAL)}, large decodes would not fit")
        return True
    if not s.workload.tiling_engages:
        return False
    whole = vae_decode_reserve(s.dtype, s.workload, sliced=True)
    beside = resident_on_device(s, placement, t5_on_cpu)
    if beside + whole <= s.budget:
        return False
    reasons.append(f"VAE tiling: one {s.workload.width}x{s.workload.height} decode needs {gib(whole)} beside "
                   f"{gib(beside)} of weights in {gib(s.budget)} free")
    return True


def choose_vae_slicing(s: Sizes, placement: str, t5_on_cpu: bool, tiling: bool, reasons: list[str]) -> bool:
    """Decode a batch one image at a time unless everything is resident with room to spare."""
    batch = s.workload.batch_size
    whole = vae_decode_reserve(s.dtype, s.workload, tiled=tiling)
    if placement in ("gpu", "cpu"):
        spare = s.budget - resident_on_device(s, placement, t5_on_cpu) - max(s.denoise_reserve, whole)
        if spare >= VAE_SLICING_SPARE:
            return False
    if batch > 1:
        reasons.append(f"VAE slicing: the batch of {batch} decodes one image at a time (all at once needs "
                       f"{gib(whole)})")
    else:
        reasons.append("VAE slicing: batches decode one image at a time")
    return True
