"""Engine: the one entry point the UI, the API and the CLI use. Requests in, results out.

    engine = Engine(settings)
    job = engine.submit(validate_request(prompt="a red circle", steps=4))
    for progress in job.events(): ...
    result = job.result()
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

from app.catalog.entry import ModelEntry
from app.engine.jobs import GenerationResult, Job
from app.engine.manager import ModelManager
from app.engine.runner import run_job
from app.engine.worker import Worker
from app.errors import EaselError, ModelNotFound
from app.generation.model_hash import HashCache
from app.generation.request import GenerationRequest
from app.settings import Settings

log = logging.getLogger(__name__)

RECENT_JOBS_KEPT = 32  # enough for the open browser tabs; finished jobs hold their images


class Engine:
    def __init__(self, settings: Settings, hooks=None):
        """`hooks`: an ExtensionManager (adjust_request, step_end, image_saved, upscalers) or None."""
        self.settings = settings
        self._hooks = hooks
        self._overrides = settings.memory_overrides()  # conflicting flags fail here, before any work
        self._catalog = None
        self._catalog_lock = threading.Lock()
        self._setup_lock = threading.RLock()  # the lazily made manager is made once, whoever asks first
        self._device = None
        self._manager: ModelManager | None = None
        self._store = None
        self._worker = Worker(self._run)
        self._recent_jobs: OrderedDict[int, Job] = OrderedDict()
        self._upscaler_models = None  # for front ends that hold only a job id

    # -- what is on disk -------------------------------------------------------------------------------
    def catalog(self, refresh: bool = False):
        """The scanned models (built once; `refresh=True` scans again)."""
        with self._catalog_lock:
            if self._catalog is None or refresh:
                self._catalog = self._scan()
            return self._catalog

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
    def device(self):
        if self._device is None:
            from app.runtime.devices import detect_device

            self._device = detect_device(self.settings.device)
        return self._device

    def memory_plan(self, entry: ModelEntry, request: GenerationRequest | None = None):
        """The plan loading `entry` for `request` would get now: free memory read afresh, beside the models
        and upscalers that would stay loaded (loads nothing; safe from any thread)."""
        return self._get_manager().plan_for(entry, request)

    # -- jobs ------------------------------------------------------------------------------------------
    def submit(self, request: GenerationRequest) -> Job:
        """Queue a job (FIFO). The model name is checked now, so an unknown one fails before queueing."""
        if self._worker.on_worker_thread:
            raise EaselError("a job cannot wait for another job from inside the engine (e.g. from an "
                             "extension's on_step_end or on_image_saved hook): it would wait forever")
        if self._hooks is not None:  # extensions see (and may adjust) the request before it is checked
            request = self._hooks.adjust_request(request)
        self.resolve_model(request.model)
        job = Job(request)
        self._recent_jobs[job.id] = job
        while len(self._recent_jobs) > RECENT_JOBS_KEPT:
            self._recent_jobs.popitem(last=False)
        self._worker.submit(job)
        return job

    def job(self, job_id: int | None) -> Job | None:
        """A recent job by id (None when unknown or long finished)."""
        return self._recent_jobs.get(job_id) if job_id is not None else None

    def generate(self, request: GenerationRequest, timeout: float | None = None) -> GenerationResult:
        return self.submit(request).result(timeout)

    @property
    def queued_jobs(self) -> list[Job]:
        """Jobs waiting for the worker, oldest first (the running one is `current_job`)."""
        return self._worker.queued

    def load(self, name: str | None = None) -> str:
        """Load a model now (between jobs) instead of with the next job; returns its name."""
        entry = self.resolve_model(name)
        self._worker.call(lambda: self._get_manager().get(entry))
        return entry.name

    def queue_position(self, job: Job) -> int:
        return self._worker.position(job)

    @property
    def current_job(self) -> Job | None:
        return self._worker.current

    def interrupt(self) -> None:
        """Stop the running job at its next step and every queued one."""
        for job in self._worker.queued:
            job.cancel.interrupt()
        current = self._worker.current
        if current:
            current.cancel.interrupt()

    def skip(self) -> None:
        current = self._worker.current
        if current:
            current.cancel.skip()

    def upscalers(self) -> list:
        """Built-in resamplers and the upscaler model files found; model ones run on the worker thread."""
        from app.upscale.registry import available_upscalers

        if self._upscaler_models is None:
            from app.upscale.models import UpscalerModels

            self._upscaler_models = UpscalerModels(device=self.device.torch_device, run_exclusive=self._worker.call)
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
        return self._worker.call(lambda: self._get_manager().unload(name))  # type: ignore[return-value]

    @property
    def loaded_models(self) -> list[str]:
        return self._manager.loaded_names if self._manager else []

    def close(self) -> None:
        self.interrupt()
        if self._manager is not None:
            self._worker.call(lambda: self._manager.unload())
        self._worker.stop()

    # -- on the worker thread --------------------------------------------------------------------------
    def _get_manager(self) -> ModelManager:
        with self._setup_lock:
            return self._make_manager()

    def _make_manager(self) -> ModelManager:
        if self._manager is None:
            self._manager = ModelManager(
                device=self.device, overrides=self._overrides, models_root=self.settings.models_dir,
                hf_cache=self.settings.hf_cache_dir, hash_cache=HashCache(self.settings.models_dir / ".easel-hashes.json"),
                max_loaded=self.settings.max_loaded_models,
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
        loaded = self._get_manager().get(entry, job.request)
        previewer = loaded.previewer if job.request.preview_every else None
        return run_job(job, loaded, self._get_store(), previewer=previewer, hooks=self._hooks)
