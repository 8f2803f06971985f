"""Planning a model beside what Easel already keeps on the device, from a reading taken just now. Pure.

`read_memory` is a live reading: on CUDA (the driver's free memory), on MPS (live tensors) and on the CPU
(available RAM) it already shows every model and upscaler Easel holds as used. Subtracting their bytes
again would count them twice; ignoring them would forget that the model being re-planned, or the ones
about to be unloaded for it, give their memory back. So the plan is made on the device as if Easel held
nothing (the reading plus everything Easel holds) with `resident_bytes` set to what stays: each byte is
counted once, and the plan's reasons say how much of the device is Easel's own.

Per job, the loaded model is planned again for the job's batch x size (`must_reload` decides what then).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from app.runtime.devices import DeviceInfo
from app.runtime.footprint import ModelFootprint
from app.runtime.overrides import MemoryOverrides
from app.runtime.plan import MemoryPlan
from app.runtime.planner import plan_memory
from app.runtime.workload import Workload


@dataclass(frozen=True)
class Holding:
    """Bytes Easel keeps on the device between jobs under one name (a loaded model, the upscaler models)."""

    name: str
    bytes: int


def plan_beside(reading: DeviceInfo, footprint: ModelFootprint, overrides: MemoryOverrides, *,
                holdings: Iterable[Holding], leaving: Collection[str] = (),
                workload: Workload = Workload()) -> MemoryPlan:
    """The plan for `footprint` on a device read just now, beside the `holdings` that stay.

    `holdings` is everything Easel holds on the device at the time of `reading`; `leaving` names those that
    will be gone when this model is placed (the model itself when it is planned again, the models unloaded
    to make room for it).
    """
    holdings = tuple(holdings)
    held = sum(h.bytes for h in holdings)
    staying = sum(h.bytes for h in holdings if h.name not in leaving)
    as_if_empty = replace(reading, free_memory=min(reading.total_memory, reading.free_memory + held))
    return plan_memory(as_if_empty, footprint, overrides, resident_bytes=staying, workload=workload)


def must_reload(current: MemoryPlan, for_job: MemoryPlan) -> bool:
    """Whether a loaded model has to be placed again (reloaded) before it can run a job planned `for_job`.

    VAE tiling and slicing follow each job's plan on the spot (diffusers can switch them on and off); the
    placement cannot change in place (there is no public call that removes group offloading), so changing
    it means a reload. That is worth it only when the job would not fit otherwise: its plan sits lower on
    the ladder because the job needs a bigger reserve than the one the model was placed for (a batch of 8
    at 1024² on a card that holds the weights for one image), or because Easel now keeps more beside it
    (a second model loaded after this one, which an offloaded model's swapped-in weights must not meet).
    A reading that merely drifted never reloads, and a smaller job never reloads to climb back up: the
    reload would cost more than the offload saves, and the next load of the model plans afresh.
    """
    if for_job.offload_rank <= current.offload_rank:
        return False
    return for_job.reserve_bytes > current.reserve_bytes or for_job.resident_bytes > current.resident_bytes
