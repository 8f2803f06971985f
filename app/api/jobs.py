"""The jobs the API submitted: run them to the end, keep their latest preview for /progress.

A request's own threadpool thread follows its job's events while it waits for the result, so keeping
the latest preview costs no extra thread. The engine reports a preview only on the steps that make
one; /progress shows the latest one until the next.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from app.engine.jobs import GenerationResult, Job
from app.errors import Interrupted
from app.generation.request import GenerationRequest


@dataclass(frozen=True)
class Finished:
    job: Job
    result: GenerationResult


class JobTracker:
    def __init__(self, engine):
        self._engine = engine
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._previews: dict[int, Any] = {}

    def run(self, request: GenerationRequest) -> Finished:
        """Submit `request` and wait for it. An interrupted job returns what it made."""
        job = self._engine.submit(request)
        with self._lock:
            self._jobs[job.id] = job
        try:
            for progress in job.events():
                if progress.preview is not None:
                    with self._lock:
                        self._previews[job.id] = progress.preview
            try:
                result = job.result()
            except Interrupted as exc:
                result = getattr(exc, "result", None) or GenerationResult(interrupted=True)
            return Finished(job, result)
        finally:
            with self._lock:
                self._jobs.pop(job.id, None)
                self._previews.pop(job.id, None)

    def latest_preview(self, job: Job):
        with self._lock:
            return self._previews.get(job.id)
