"""Engine: the one entry point the UI, the API and the CLI use. Requests in, results out.

    engine = Engine(settings)
    job = engine.submit(validate_request(prompt="a red circle", steps=4))
    for progress in job.events(): ...
    result = job.result()
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from app.addons.apply import addon_model_bytes, prepare_addons, resolve_addons, with_prompt_addons
from app.addons.base import AddonContext
from app.catalog.entry import ModelEntry
from app.engine.jobs import GenerationResult, Job, JobNotFound
from app.engine.manager import ModelManager
from app.engine.recent import RecentJobs
from app.engine.runner import resolve_size, run_job
from app.engine.stages import check_stages
from app.engine.worker import Worker
from app.errors import EaselError, InvalidRequest, ModelNotFound
from app.families import family_for
from app.generation.model_hash import HashCache
from app.generation.request import GenerationRequest, validate_request
from app.settings import Settings

log = logging.getLogger(__name__)

RECENT_JOBS_KEPT = 32  # finished jobs kept for lookup by id (queued and running ones are always kept)


class Engine:
    def __init__(self, settings: Settings, hooks=None, hash_cache: HashCache | None = None):
        """`hooks`: an ExtensionManager (adjust_request, step_end, image_saved, upscalers) or None.
        `hash_cache`: the process's one model-hash cache (made here when not given). Front ends build
        the engine with `app.engine.factory.build_engine`, which passes both."""
        self.settings = settings
        self._hooks = hooks
        self.hash_cache = hash_cache or HashCache(settings.models_dir / ".easel-hashes.json")
        self._warm = threading.Event()
        self._warm.set()  # nothing to wait for until warm_up() is asked for
        self._overrides = settings.memory_overrides()  # conflicting flags fail here, before any work
        self._catalog = None
        self._catalog_lock = threading.Lock()
        self._setup_lock = threading.RLock()  # the lazily made manager is made once, whoever asks first
        self._device = None
        self._manager: ModelManager | None = None
        self._store = None
        self._worker = Worker(self._run)
        self._recent_jobs = RecentJobs(RECENT_JOBS_KEPT)
        self._upscaler_models = None  # for front ends that hold only a job id
        self._lora_infos = None  # the one LoraInfoCache every front end and the LoRA add-on read

    # -- what is on disk -------------------------------------------------------------------------------
    def catalog(self, refresh: bool = False):
        """The scanned models (built once; `refresh=True` scans again)."""
        with self._catalog_lock:
            if self._catalog is None or refresh:
                self._catalog = self._scan()
            return self._catalog

    def loras(self, refresh: bool = False) -> list:
        """The LoRA files found, with what each says about itself (catalog.lora_info.LoraInfo)."""
        files = self.catalog(refresh).files_of_kind("lora")
        return self.lora_info_cache.infos(f.path for f in files)

    @property
    def lora_info_cache(self):
        if self._lora_infos is None:
            from app.catalog.lora_info import LoraInfoCache

            self._lora_infos = LoraInfoCache()
        return self._lora_infos

    def _scan(self):
        from app.catalog.scan import scan_models

        if self.settings.demo_models:
            from app.demo.build import ensure_demo_models, shipped_demo_models

            if not shipped_demo_models(self.settings.models_dir):  # the trained demos were removed
                ensure_demo_models(self.settings.models_dir)
        return scan_models([self.settings.models_dir], hf_cache=self.settings.hf_cache_dir,
                           extra_paths_file=self.settings.extra_model_paths_file)

    def models(self, refresh: bool = False) -> list[ModelEntry]:
        return list(self.catalog(refresh).models)

    def resolve_model(self, name: str | None) -> ModelEntry:
        """The entry for `name`, or the default: the configured one, else the first ready real model,
        else the first ready demo model."""
        scan = self.catalog()
        if name:
            return scan.by_name(name)
        if self.settings.default_model:
            return scan.by_name(self.settings.default_model)
        ready = [m for m in scan.models if m.ready]
        real = [m for m in ready if not m.demo]
        if real or ready:
            return (real or ready)[0]
        raise ModelNotFound(f"no model is ready in {self.settings.models_dir}; run `python -m app models` to see why")

    @property
    def extensions(self):
        """The ExtensionManager the engine calls (None when built without extensions)."""
        return self._hooks

    def warm_up(self) -> threading.Thread:
        """Scan the models and import torch and diffusers in the background, so the first request is
        fast; jobs wait for it to end (never racing it for a half-imported module)."""
        self._warm.clear()
        thread = threading.Thread(target=self._warm_up, name="easel-warm-up", daemon=True)
        thread.start()
        return thread

    def wait_until_warm(self, timeout: float | None = None) -> bool:
        return self._warm.wait(timeout)

    def _warm_up(self) -> None:
        try:
            self.catalog()
            self.device  # noqa: B018 - detection imports torch
            import diffusers

            diffusers.FluxPipeline, diffusers.StableDiffusion3Pipeline  # noqa: B018 - resolve the lazy module
        except Exception:  # a broken models folder is reported by the Models tab, not here
            log.exception("warm-up failed")
        finally:
            self._warm.set()

    @property
    def device(self):
        if self._device is None:
            from app.runtime.devices import detect_device

            self._device = detect_device(self.settings.device)
        return self._device

    def memory_plan(self, entry: ModelEntry, request: GenerationRequest | None = None):
        """The plan loading `entry` for `request` would get now: free memory read afresh, beside the models
        and upscalers that would stay loaded, with room for the request's ControlNets (loads nothing; safe
        from any thread). InvalidRequest when the request's add-ons do not fit the model."""
        addon_bytes = 0
        if request is not None and request.addons and entry.ready:
            addon_bytes = addon_model_bytes(resolve_addons(request, self._addon_context(entry, request)))
        return self._get_manager().plan_for(entry, request, addon_bytes)

    # -- jobs ------------------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest, source: str = "engine") -> Job:
        """Queue a job (FIFO). `source` says who asked ("api", "ui:txt2img", ...): the queue view shows it.

        The request is validated here, whoever built it (`model_copy(update=...)` skips pydantic's
        checks), and its model resolved, so a bad request fails with InvalidRequest before queueing."""
        if self._worker.on_worker_thread:
            raise EaselError("a job cannot wait for another job from inside the engine (e.g. from an "
                             "extension's on_step_end or on_image_saved hook): it would wait forever")
        if self._hooks is not None:  # extensions see (and may adjust) the request before it is checked
            request = self._hooks.adjust_request(request)
        request = with_prompt_addons(_revalidated(request))
        if request.first_block_cache is None:  # the job takes the setting (app/runtime/block_cache.py)
            request = request.model_copy(update={"first_block_cache": self.settings.first_block_cache})
        entry = self.resolve_model(request.model)
        check_task(request, entry)
        if request.addons:  # an add-on that does not fit fails here, named (a broken model fails at its load)
            resolve_addons(request, self._addon_context(entry, request))
        if request.stages:
            family = family_for(entry.family)
            size = resolve_size(request, family.defaults_for(entry.variant, entry.path))
            check_stages(request, family, self.upscalers, self.resolve_model, (size.width, size.height))
        job = Job(request, source=source, model=entry.name)
        self._recent_jobs.add(job)
        self._worker.submit(job)
        return job

    def submit_call(self, fn: Callable[[], object], *, task: str, model: str = "", source: str = "engine") -> Job:
        """Run `fn` on the worker thread between generations, as a job of its own: listed in the queue,
        cancellable while it waits; `job.result()` is what `fn` returned."""
        job = self._worker.submit_call(fn, task=task, model=model, source=source)
        self._recent_jobs.add(job)
        return job

    def job(self, job_id: int | None) -> Job | None:
        """A job by id: every queued or running one, and the recent finished ones (None otherwise)."""
        return self._recent_jobs.get(job_id)

    def generate(self, request: GenerationRequest, timeout: float | None = None,
                 source: str = "engine") -> GenerationResult:
        """Submit and wait. The caller holds the images; the job keeps only the metadata."""
        job = self.submit(request, source=source)
        result = job.result(timeout)
        job.release()
        return result

    @property
    def queued_jobs(self) -> list[Job]:
        """Jobs waiting for the worker, oldest first (the running one is `current_job`)."""
        return self._worker.queued

    @property
    def active_jobs(self) -> list[Job]:
        """The running job, then the queued ones oldest first: what the queue view lists."""
        return self._worker.active

    def wait_for_queue(self, condition: Callable[[list[Job]], bool], timeout: float) -> bool:
        """Block until `condition(active_jobs)` holds, checked whenever a job is queued, starts, ends or is
        cancelled; False when `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self._worker.changes.version
            if condition(self.active_jobs):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._worker.changes.wait(seen, left)

    def load(self, name: str | None = None, source: str = "engine") -> str:
        """Load a model now (after the jobs queued before it) instead of with the next job; its name."""
        entry = self.resolve_model(name)
        self._worker.call(lambda: self._get_manager().get(entry), task="load", model=entry.name, source=source)
        return entry.name

    def queue_position(self, job: Job) -> int:
        return self._worker.position(job)

    @property
    def current_job(self) -> Job | None:
        return self._worker.current

    def cancel(self, job_id: int | None, skip: bool = False) -> Job:
        """Interrupt one job: a running one stops at its next step and keeps what it made, a queued one
        ends now with nothing made. `skip` ends only the running batch. JobNotFound when no queued or
        running job has that id."""
        job = next((j for j in self._worker.active if j.id == job_id), None)
        if job is None or not self._worker.cancel(job, skip=skip):
            raise JobNotFound(f"no queued or running job has id {job_id} (it may have finished already)")
        return job

    def interrupt(self) -> None:
        """Stop the running job at its next step, as A1111's /interrupt does; queued jobs go on."""
        current = self._worker.current
        if current is not None:
            self._worker.cancel(current)

    def skip(self) -> None:
        """End the running job's current batch; it goes on with the next one."""
        current = self._worker.current
        if current is not None:
            self._worker.cancel(current, skip=True)

    def upscalers(self) -> list:
        """Built-in resamplers and the upscaler model files found; model ones run on the worker thread."""
        from app.upscale.registry import available_upscalers

        if self._upscaler_models is None:
            from app.upscale.models import UpscalerModels

            self._upscaler_models = UpscalerModels(device=self.device.torch_device,
                                                  run_exclusive=functools.partial(self._worker.call, task="upscale"))
        found = available_upscalers(self.catalog(), self._upscaler_models)
        if self._hooks is not None:
            found.extend(self._hooks.upscalers())
        return found

    def save_extra(self, image, *, task: str, infotext: str, seed: int = 0) -> Path:
        """Save a picture made outside a generation job (upscales, grids) with its infotext."""
        return self._get_store().save(image, task=task, infotext=infotext, seed=seed)

    def unload(self, name: str | None = None) -> list[str]:
        """Unload a model (or all, with the upscaler models) and give the memory back."""
        if name is None and self._upscaler_models is not None:
            self._upscaler_models.clear()
        return self._worker.call(lambda: self._get_manager().unload(name), task="unload",  # type: ignore[return-value]
                                 model=name or "")

    @property
    def loaded_models(self) -> list[str]:
        return self._manager.loaded_names if self._manager else []

    def close(self) -> None:
        """Cancel every job, unload the models, stop the worker."""
        for job in self._worker.active:
            self._worker.cancel(job)
        if self._manager is not None:
            self._worker.call(lambda: self._manager.unload(), task="unload")
        self._worker.stop()

    # -- on the worker thread --------------------------------------------------------------------------
    def _get_manager(self) -> ModelManager:
        self._warm.wait()  # loads never race the warm-up's imports (a half-imported diffusers)
        with self._setup_lock:
            return self._make_manager()

    def _make_manager(self) -> ModelManager:
        if self._manager is None:
            self._manager = ModelManager(
                device=self.device, overrides=self._overrides, models_root=self.settings.models_dir,
                hf_cache=self.settings.hf_cache_dir, hash_cache=self.hash_cache,
                max_loaded=self.settings.max_loaded_models, compile_blocks=self.settings.compile,
                attention=self.settings.attention,
                upscaler_bytes=lambda: self._upscaler_models.resident_bytes() if self._upscaler_models else 0)
        return self._manager

    def _get_store(self):
        if self._store is None:
            from app.generation.outputs import OutputStore

            self._store = OutputStore(Path(self.settings.outputs_dir), self.settings.filename_pattern,
                                      on_saved=self._hooks.image_saved if self._hooks else None)
        return self._store

    def _run(self, job: Job) -> GenerationResult:
        entry = self.resolve_model(job.request.model)
        # the add-ons first, so the plan keeps room for their models (a model that cannot load fails in get)
        resolved = resolve_addons(job.request, self._addon_context(entry, job.request)) if entry.ready else []
        loaded = self._get_manager().get(entry, job.request, addon_model_bytes(resolved))
        previewer = loaded.previewer if job.request.preview_every else None
        addons = prepare_addons(loaded, resolved, self.hash_cache)
        return run_job(job, loaded, self._get_store(), previewer=previewer, hooks=self._hooks, addons=addons,
                       upscalers=self.upscalers, load_model=lambda name: self._load_for_stage(name, job.request))

    def _load_for_stage(self, name: str, request):
        """Another model for a stage of a running job (refine), with no add-ons on it: a LoRA an earlier
        job fused into it is taken out."""
        loaded = self._get_manager().get(self.resolve_model(name), request)
        prepare_addons(loaded, [], self.hash_cache)
        return loaded

    def _addon_context(self, entry: ModelEntry, request: GenerationRequest) -> AddonContext:
        family = family_for(entry.family)
        size = resolve_size(request, family.defaults_for(entry.variant, entry.path))
        return AddonContext(entry=entry, capabilities=family.capabilities_for(entry.variant), catalog=self.catalog(),
                            hash_cache=self.hash_cache, lora_infos=self.lora_info_cache, request=request,
                            size=(size.width, size.height), annotators_dir=self.settings.models_dir / "annotators")


def _revalidated(request) -> GenerationRequest:
    """The request checked again field by field (InvalidRequest names the field)."""
    if not isinstance(request, GenerationRequest):
        raise InvalidRequest("request", f"expected a GenerationRequest, got {type(request).__name__}")
    return validate_request(**dict(request))


def check_task(request: GenerationRequest, entry: ModelEntry) -> None:
    """A task the model has no pipeline for (FLUX.1 Fill only inpaints) is refused at submit, named."""
    if entry.family is None:
        return
    capabilities = family_for(entry.family).capabilities_for(entry.variant)
    if request.task not in capabilities.tasks:
        raise InvalidRequest("task", f"{entry.name} ({entry.variant}) does {', '.join(capabilities.tasks)} only, "
                             f"not {request.task}: choose another model for it")
    if request.inpaint_only_masked and not capabilities.crops_to_mask:
        raise InvalidRequest("inpaint_only_masked", f"{entry.name} ({entry.variant}) inpaints the whole picture; "
                             "'Only masked' is not available with it")
