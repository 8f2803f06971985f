"""The pipeline manager: loads catalog entries under a memory plan, caches them, unloads them.

Only the engine's worker thread calls it, so it holds no lock of its own.
"""

from __future__ import annotations

import gc
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.catalog.entry import ModelEntry
from app.engine.loading import load_txt2img_pipeline, switch_task
from app.errors import MissingModelFiles, UnreadableModel
from app.families import FamilyAdapter, family_for
from app.generation.model_hash import HashCache, weight_files_of

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    entry: ModelEntry
    family: FamilyAdapter
    plan: Any  # MemoryPlan
    device: Any  # DeviceInfo
    model_hash: str
    load_seconds: float
    pipes: dict[str, Any] = field(default_factory=dict)  # task -> pipeline over the same components
    previewer: Any = None
    active_task: str = "txt2img"

    def pipeline_for(self, task: str):
        """The task's pipeline. Placement hooks live on the shared modules and carry over; model CPU
        offload is the exception: its hook chain belongs to one pipeline, so it is re-made on a switch."""
        if task not in self.pipes:
            self.pipes[task] = switch_task(self.pipes["txt2img"], self.family, task)
        pipe = self.pipes[task]
        if task != self.active_task and self.plan.placement == "model_offload":
            pipe.enable_model_cpu_offload(device=self.device.torch_device)
        self.active_task = task
        return pipe


class ModelManager:
    """Keeps up to `max_loaded` models; the least recently used is unloaded to make room."""

    def __init__(self, *, device, overrides, models_root: Path, hf_cache: Path | None, hash_cache: HashCache,
                 max_loaded: int = 1):
        self.device = device
        self.overrides = overrides
        self.models_root = Path(models_root)
        self.hf_cache = hf_cache
        self.hash_cache = hash_cache
        self.max_loaded = max(1, max_loaded)
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()

    @property
    def loaded_names(self) -> list[str]:
        return list(self._loaded)

    def plan_for(self, entry: ModelEntry):
        from app.runtime.memory import plan_memory

        return plan_memory(self.device, footprint_of(entry), self.overrides)

    def get(self, entry: ModelEntry) -> LoadedModel:
        if entry.name in self._loaded:
            self._loaded.move_to_end(entry.name)
            return self._loaded[entry.name]
        if not entry.ready:
            problems = "; ".join(entry.problems) or entry.status
            error = MissingModelFiles if entry.status == "missing" else UnreadableModel
            raise error(f"{entry.name} cannot be loaded: {problems}")
        while len(self._loaded) >= self.max_loaded:
            self.unload(next(iter(self._loaded)))
        loaded = self._load(entry)
        self._loaded[entry.name] = loaded
        return loaded

    def _load(self, entry: ModelEntry) -> LoadedModel:
        from app.engine.preview import LatentPreviewer
        from app.runtime.memory import apply_memory_plan, torch_dtype

        family = family_for(entry.family)
        plan = self.plan_for(entry)
        log.info("loading %s (%s %s) on %s: %s", entry.name, family.display, entry.variant,
                 self.device.describe(), plan.describe())
        started = time.perf_counter()
        pipe = load_txt2img_pipeline(entry, family, torch_dtype(plan), models_root=self.models_root,
                                     hf_cache=self.hf_cache)
        for line in apply_memory_plan(pipe, plan, self.device):
            log.info("memory: %s", line)
        model_hash = self.hash_cache.model_hash(weight_files_of(entry))
        seconds = time.perf_counter() - started
        log.info("loaded %s in %.1f s (hash %s)", entry.name, seconds, model_hash or "-")
        return LoadedModel(entry=entry, family=family, plan=plan, device=self.device, model_hash=model_hash,
                           load_seconds=seconds, pipes={"txt2img": pipe}, previewer=LatentPreviewer(pipe.vae))

    def unload(self, name: str | None = None) -> list[str]:
        """Unload one model (or all) and give its memory back; returns the names unloaded."""
        names = [name] if name else list(self._loaded)
        gone = []
        for n in names:
            loaded = self._loaded.pop(n, None)
            if loaded is None:
                continue
            for pipe in loaded.pipes.values():
                _release(pipe)
            loaded.pipes.clear()
            gone.append(n)
        if gone:
            free_device_memory()
            log.info("unloaded %s", ", ".join(gone))
        return gone


# Which folder of a diffusers pipeline (per family) or which single-file part plays which memory role.
_FOLDER_ROLES = {
    "flux": {"transformer": "transformer", "text_encoder": "text_encoders", "text_encoder_2": "t5", "vae": "vae"},
    "sd3": {"transformer": "transformer", "text_encoder": "text_encoders", "text_encoder_2": "text_encoders",
            "text_encoder_3": "t5", "vae": "vae"},
}
_PART_ROLES = {"checkpoint": "transformer", "transformer": "transformer", "clip_l": "text_encoders",
               "clip_g": "text_encoders", "t5xxl": "t5", "vae": "vae"}


def footprint_of(entry: ModelEntry):
    """The model's weights by memory role, from file headers (no weights read)."""
    from app.runtime.memory import ModelFootprint

    roles: dict[str, list[Path]] = {}
    if entry.format == "diffusers":
        folder = Path(entry.parts.get("folder", entry.path))
        for sub, role in _FOLDER_ROLES.get(entry.family or "", {}).items():
            roles.setdefault(role, []).extend(sorted((folder / sub).glob("*.safetensors")))
    else:
        for part, path in entry.parts.items():
            if part in _PART_ROLES:
                roles.setdefault(_PART_ROLES[part], []).append(Path(path))
    return ModelFootprint.from_files(roles)


def _release(pipe) -> None:
    """Drop offload hooks so the modules can be collected."""
    remove = getattr(pipe, "remove_all_hooks", None)
    if callable(remove):
        try:
            remove()
        except Exception:  # hooks are best-effort to remove; collection still frees the weights
            log.debug("remove_all_hooks failed", exc_info=True)


def free_device_memory() -> None:
    """Collect and hand cached GPU memory back (after an unload or an out-of-memory error)."""
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        torch.mps.empty_cache()
