"""The pipeline manager: loads catalog entries under a memory plan, caches them, unloads them.

Only the engine's worker thread loads and unloads, so it holds no lock of its own; `plan_for` reads an
immutable snapshot of what is loaded and may be called from any thread.

Each plan starts from the device's free memory read right then (never the figure seen at start), beside
what Easel keeps on the device: the other loaded models and the upscaler models (app/runtime/residency.py
says how they are counted once). Before each job the loaded model is planned again for the job's batch x
size: VAE tiling and slicing follow that plan, and the model is reloaded when the job would not fit its
placement (`must_reload`).
"""

from __future__ import annotations

import gc
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.catalog.entry import ModelEntry
from app.engine.loading import base_task, load_base_pipeline, switch_task
from app.errors import MissingModelFiles, UnreadableModel
from app.families import FamilyAdapter, family_for
from app.generation.model_hash import HashCache, weight_files_of
from app.runtime.devices import read_memory
from app.runtime.residency import Holding, must_reload, plan_beside
from app.runtime.workload import Workload

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
    active_task: str = "txt2img"  # the key of the pipeline the last job ran: a task, or task+add-on components
    addon_state: dict[str, Any] = field(default_factory=dict)  # add-on kind -> what it left on this model
    footprint: Any = None  # ModelFootprint the plan was made for
    held_bytes: int = 0  # what the placed pipeline keeps on the device between jobs
    addon_held: int = 0  # what the last job's add-on models (ControlNets) keep there beside it
    compile_pending: bool = False  # compiled blocks that no image has run yet (the first pays the compile)

    @property
    def base_pipeline(self):
        """The pipeline the model was loaded as (txt2img's; inpaint's for FLUX.1 Fill): the others share its parts."""
        return next(iter(self.pipes.values()))

    def pipeline_for(self, task: str, components: dict[str, Any] | None = None, kinds=frozenset()):
        """The task's pipeline, with the components an add-on brings (`{"controlnet": model}`: their names
        pick the class, e.g. FluxControlNetPipeline; `kinds` are more names that pick it). Placement hooks
        live on the shared modules and carry over; model CPU offload is the exception: its hook chain
        belongs to one pipeline, so it is re-made when the pipeline or one of its add-on components changes."""
        components = components or {}
        names = sorted(set(components) | set(kinds))
        key = task if not names else f"{task}+{'+'.join(names)}"
        if key not in self.pipes:
            self.pipes[key] = switch_task(self.base_pipeline, self.family, task, self.entry.variant, components,
                                          frozenset(kinds))
        pipe = self.pipes[key]
        changed = [name for name, module in components.items() if getattr(pipe, name, None) is not module]
        for name in changed:
            setattr(pipe, name, components[name])  # DiffusionPipeline registers the new module
        if (key != self.active_task or changed) and self.plan.placement == "model_offload":
            pipe.enable_model_cpu_offload(device=self.device.torch_device)
        self.active_task = key
        return pipe

    def drop_pipelines_using(self, modules) -> None:
        """Forget the add-on pipelines holding any of `modules` (a ControlNet no job uses any more), so its
        memory goes with the add-on's own reference. The base pipeline is never dropped."""
        ids = {id(m) for m in modules}
        if not ids:
            return
        base = next(iter(self.pipes), None)

        def holds(pipe) -> bool:
            parts = list(pipe.components.values())
            parts += [net for part in parts for net in getattr(part, "nets", ())]  # Multi ControlNet models
            return any(id(part) in ids for part in parts)

        for key in [k for k, pipe in self.pipes.items() if k != base and holds(pipe)]:
            del self.pipes[key]


UPSCALERS = "upscaler models"  # the holding name of the upscaler models on the device


class ModelManager:
    """Keeps up to `max_loaded` models; the least recently used is unloaded to make room.

    `read_memory(device)` returns the device with its free memory read now (runtime.devices.read_memory);
    `upscaler_bytes()` what the upscaler models hold on the device.
    """

    def __init__(self, *, device, overrides, models_root: Path, hf_cache: Path | None, hash_cache: HashCache,
                 max_loaded: int = 1, read_memory: Callable[[Any], Any] = read_memory,
                 upscaler_bytes: Callable[[], int] = lambda: 0, compile_blocks: bool = False,
                 attention: str = "auto"):
        self.device = device
        self.overrides = overrides
        self.models_root = Path(models_root)
        self.hf_cache = hf_cache
        self.hash_cache = hash_cache
        self.max_loaded = max(1, max_loaded)
        self._read_memory = read_memory
        self._upscaler_bytes = upscaler_bytes
        self.compile_blocks = compile_blocks
        self.attention = attention
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self._held: tuple[Holding, ...] = ()  # the loaded models, least recently used first; replaced whole

    @property
    def loaded_names(self) -> list[str]:
        return [h.name for h in self._held]

    def plan_for(self, entry: ModelEntry, request=None, addon_bytes: int = 0):
        """The plan loading `entry` for `request` (None: one image at the variant's size) would get now,
        with room for `addon_bytes` of add-on models beside it.

        Loads nothing. Counts the models that would stay loaded beside it: not `entry` itself, nor the
        least recently used ones `get` would unload to make room.
        """
        names = [h.name for h in self._held]
        if entry.name in names:
            leaving: Collection[str] = {entry.name}
        else:
            leaving = set(names[: max(0, len(names) - self.max_loaded + 1)])
        return self._plan(footprint_of(entry), workload_for(entry, request, addon_bytes), leaving)

    def get(self, entry: ModelEntry, request=None, addon_bytes: int = 0) -> LoadedModel:
        """`entry` loaded and tuned for `request`'s batch x size and the add-on models it runs beside it
        (loaded first if needed; placed again when the job no longer fits where it is)."""
        workload = workload_for(entry, request, addon_bytes)
        if entry.name in self._loaded:
            self._loaded.move_to_end(entry.name)
            self._note_held()
            loaded = self._fit_to_job(self._loaded[entry.name], workload)
        else:
            if not entry.ready:
                problems = "; ".join(entry.problems) or entry.status
                error = MissingModelFiles if entry.status == "missing" else UnreadableModel
                raise error(f"{entry.name} cannot be loaded: {problems}")
            while len(self._loaded) >= self.max_loaded:
                self.unload(next(iter(self._loaded)))
            loaded = self._add(entry, workload)
        # the job's ControlNets stay where the plan put them until a job without them
        loaded.addon_held = addon_bytes if loaded.plan.placement in ("gpu", "cpu") else 0
        self._note_held()
        return loaded

    def _plan(self, footprint, workload: Workload, leaving: Collection[str]):
        holdings = (*self._held, Holding(UPSCALERS, self._upscaler_bytes()))
        return plan_beside(self._read_memory(self.device), footprint, self.overrides, holdings=holdings,
                           leaving=leaving, workload=workload)

    def _fit_to_job(self, loaded: LoadedModel, workload: Workload) -> LoadedModel:
        from app.runtime.memory import set_vae_tactics

        plan = self._plan(loaded.footprint, workload, {loaded.entry.name})
        if must_reload(loaded.plan, plan):
            log.info("placing %s again for %s: %s (it was placed for %s: %s)", loaded.entry.name,
                     workload.describe(), plan.describe(), loaded.plan.workload.describe(), loaded.plan.describe())
            self.unload(loaded.entry.name)
            return self._add(loaded.entry, workload)
        for line in set_vae_tactics(loaded.base_pipeline, tiling=plan.vae_tiling, slicing=plan.vae_slicing):
            log.info("memory for %s: %s", workload.describe(), line)
        return loaded

    def _add(self, entry: ModelEntry, workload: Workload) -> LoadedModel:
        loaded = self._load(entry, workload)
        self._loaded[entry.name] = loaded
        self._note_held()
        return loaded

    def _note_held(self) -> None:
        self._held = tuple(Holding(name, m.held_bytes + m.addon_held) for name, m in self._loaded.items())

    def _load(self, entry: ModelEntry, workload: Workload) -> LoadedModel:
        from app.engine.preview import LatentPreviewer
        from app.runtime.memory import apply_memory_plan, held_bytes, torch_dtype

        from app.runtime.attention import choose_attention, set_attention

        family = family_for(entry.family)
        attention = choose_attention(self.attention, self.device)  # a kernel this device cannot run fails first
        footprint = footprint_of(entry)
        plan = self._plan(footprint, workload, leaving=())
        log.info("loading %s (%s %s) on %s for %s: %s", entry.name, family.display, entry.variant,
                 self.device.name, workload.describe(), plan.describe())
        started = time.perf_counter()
        pipe = load_base_pipeline(entry, family, torch_dtype(plan), models_root=self.models_root,
                                  hf_cache=self.hf_cache)
        task = base_task(family, entry.variant)
        for line in apply_memory_plan(pipe, plan, self.device):
            log.info("memory: %s", line)
        set_attention(pipe.transformer, attention.name)
        log.info("speed: attention %s: %s", attention.name, attention.why)
        if self.compile_blocks:
            from app.runtime.compile import compile_repeated_blocks

            log.info("speed: %s", compile_repeated_blocks(pipe.transformer))
        model_hash = self.hash_cache.model_hash(weight_files_of(entry))
        seconds = time.perf_counter() - started
        log.info("loaded %s in %.1f s (hash %s)", entry.name, seconds, model_hash or "-")
        return LoadedModel(entry=entry, family=family, plan=plan, device=self.device, model_hash=model_hash,
                           load_seconds=seconds, pipes={task: pipe}, previewer=LatentPreviewer(pipe.vae),
                           footprint=footprint, held_bytes=held_bytes(plan, footprint), active_task=task,
                           compile_pending=self.compile_blocks)

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
        self._note_held()
        if gone:
            free_device_memory()
            log.info("unloaded %s", ", ".join(gone))
        return gone


def workload_for(entry: ModelEntry, request=None, addon_bytes: int = 0) -> Workload:
    """The batch x size `request` runs `entry` at; one image at the variant's size without a request.
    `addon_bytes`: the job's ControlNets at 16 bits (app.addons.apply.addon_model_bytes)."""
    from app.engine.runner import resolve_size

    try:
        defaults = family_for(entry.family).defaults_for(entry.variant, entry.path)
    except ValueError:  # a family Easel does not know: the plan's reference workload
        return Workload()
    if request is None:
        return Workload(1, defaults.width, defaults.height)
    from app.engine.stages import pass_sizes

    geometry = resolve_size(request, defaults)
    largest = max(pass_sizes(request, geometry.width, geometry.height), key=lambda size: size[0] * size[1])
    return Workload(request.batch_size, *largest, addon_bytes=addon_bytes)


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
        if "transformer" in entry.parts:  # fp8 transformer and T5 files stay fp8 (families/fp8_storage.py)
            return ModelFootprint.from_files(roles, fp8_kept=("transformer", "t5"))
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
