"""The model manager plans each load from memory read at that moment, beside what stays loaded.

Real loads of the tiny demo models on the CPU; the device's memory readings are fakes, so the plans they
lead to are known.
"""

from dataclasses import replace

import pytest

from app.catalog.scan import scan_models
from app.engine.manager import ModelManager
from app.generation.model_hash import HashCache
from app.generation.request import validate_request
from app.runtime.devices import GIB, DeviceInfo
from app.runtime.memory import MemoryOverrides

RAM = DeviceInfo("cpu", "test CPU", None, 16 * GIB, 16 * GIB, None, True)


class Readings:
    """A fake `read_memory`: the free RAM it reports is set by the test."""

    def __init__(self, *free_gib: float):
        self.free = list(free_gib)

    def __call__(self, device: DeviceInfo) -> DeviceInfo:
        free = self.free.pop(0) if len(self.free) > 1 else self.free[0]
        return replace(device, free_memory=int(free * GIB))


@pytest.fixture(scope="module")
def demo_entries(demo_models_dir):
    models = {m.name: m for m in scan_models([demo_models_dir]).models}
    return models["easel-demo-flux"], models["easel-demo-sd3"]


def manager(tmp_path, readings, *, max_loaded=1, upscaler_bytes=lambda: 0) -> ModelManager:
    return ModelManager(device=RAM, overrides=MemoryOverrides(), models_root=tmp_path, hf_cache=None,
                        hash_cache=HashCache(tmp_path / "hashes.json"), max_loaded=max_loaded,
                        read_memory=readings, upscaler_bytes=upscaler_bytes)


def test_free_memory_is_read_again_before_each_load(tmp_path, demo_entries):
    flux, sd3 = demo_entries
    models = manager(tmp_path, Readings(12, 0.5))  # 12 GiB free at the first load, 0.5 GiB at the second
    first = models.get(flux).plan
    second = models.get(sd3).plan  # unloads the FLUX demo first (one model at a time)
    assert (first.budget_bytes, second.budget_bytes) == (12 * GIB, GIB // 2)
    # fp32 weights + the 1 GiB reserve fit 12 GiB but not 0.5 GiB, where the CPU falls back to bf16
    assert (first.dtype, second.dtype) == ("float32", "bfloat16")
    assert models.loaded_names == ["easel-demo-sd3"]


def test_a_model_kept_loaded_counts_against_the_next_one(tmp_path, demo_entries):
    flux, sd3 = demo_entries
    models = manager(tmp_path, Readings(12), max_loaded=2)
    held = models.get(flux).held_bytes
    assert held > 0  # on the CPU, RAM holds the whole pipeline
    beside = models.plan_for(sd3)
    assert beside.resident_bytes == held
    assert "kept loaded" in beside.describe()
    assert models.plan_for(flux).resident_bytes == 0  # planning the loaded model again: its own bytes are free


def test_a_model_that_will_be_unloaded_to_make_room_does_not_count(tmp_path, demo_entries):
    flux, sd3 = demo_entries
    models = manager(tmp_path, Readings(12), max_loaded=1)
    models.get(flux)
    assert models.plan_for(sd3).resident_bytes == 0


def test_upscaler_models_on_the_device_are_counted_once(tmp_path, demo_entries):
    """A live reading already shows the upscalers' 3 GiB as used: the plan has 9 GiB, not 12 or 6."""
    flux, _ = demo_entries
    upscalers = {"bytes": 0}

    def reading(device):  # 12 GiB of RAM less what the upscalers hold, as read_memory would see it
        return replace(device, free_memory=12 * GIB - upscalers["bytes"])

    models = manager(tmp_path, reading, upscaler_bytes=lambda: upscalers["bytes"])
    before = models.plan_for(flux)
    upscalers["bytes"] = 3 * GIB
    after = models.plan_for(flux)
    assert (before.budget_bytes, before.resident_bytes) == (12 * GIB, 0)
    assert (after.budget_bytes, after.resident_bytes) == (9 * GIB, 3 * GIB)
    assert "beside 3.0 GiB kept loaded" in after.describe()


def test_each_job_gets_vae_slicing_when_its_batch_needs_it(tmp_path, demo_entries):
    """3 GiB free: one 256² image leaves room to spare, a batch of 16 decoded at once would not."""
    flux, _ = demo_entries
    models = manager(tmp_path, Readings(3))
    one = validate_request(prompt="a", batch_size=1)
    sixteen = validate_request(prompt="a", batch_size=16)
    vae = models.get(flux, one).pipes["txt2img"].vae
    assert vae.use_slicing is False
    assert models.get(flux, sixteen).pipes["txt2img"].vae is vae  # the same pipeline, not reloaded
    assert vae.use_slicing is True
    models.get(flux, one)
    assert vae.use_slicing is False


def test_the_preview_plan_is_for_the_requested_batch_and_size(tmp_path, demo_entries):
    flux, _ = demo_entries
    models = manager(tmp_path, Readings(12))
    plan = models.plan_for(flux, validate_request(prompt="a", batch_size=4, width=512, height=768))
    assert (plan.workload.batch_size, plan.workload.width, plan.workload.height) == (4, 512, 768)
    assert models.plan_for(flux).workload.width == 256  # the demo variant's own size
