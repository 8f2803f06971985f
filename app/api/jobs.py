"""The jobs the API submitted: submit, then wait for the end without holding a thread.

A waiting request is a coroutine awaiting its job (`Job.wait`: a future the worker resolves), so any
number of queued requests leave the threadpool, /progress and /queue free. /progress shows the running
job's newest preview, which the job itself keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engine.jobs import GenerationResult, Job
from app.errors import Interrupted
from app.generation.request import GenerationRequest

SOURCE = "api"  # who the queue view says asked


@dataclass(frozen=True)
class Finished:
    job: Job
    result: GenerationResult


class JobTracker:
    def __init__(self, engine):
        self._engine = engine

    async def run(self, request: GenerationRequest) -> Finished:
        """Submit `request` and await its end. An interrupted job returns what it made."""
        job = self._engine.submit(request, source=SOURCE)
        await job.wait()
        try:
            result = job.result(timeout=0)
        except Interrupted as exc:
            result = getattr(exc, "result", None) or GenerationResult(interrupted=True)
        job.release()  # the response holds the images now
        return Finished(job, result)

    def latest_preview(self, job: Job):
        return job.latest_preview
