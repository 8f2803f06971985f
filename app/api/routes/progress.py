"""GET /progress, POST /interrupt and /skip: about the job the engine is running, whoever sent it.

These are `async`: they only read or set a flag (the preview's PNG is encoded in the threadpool), and
answer however many requests wait in the queue. /interrupt and /skip act on the running job only, as
A1111's do; to cancel one queued job, use POST /sdapi/v1/queue/{job_id}/cancel.
"""

from __future__ import annotations

import time
from typing import Any

from anyio import to_thread
from fastapi import APIRouter

from app.api.context import ApiContext
from app.api.images import encode_png
from app.api.schemas import ProgressResponse


def progress_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["progress"])

    @router.get("/progress", response_model=ProgressResponse)
    async def progress(skip_current_image: bool = False) -> dict[str, Any]:
        """Progress of the running job. state.job_count counts the running job and every queued one (from
        the API and the web UI); current_image is the latest preview (option show_progress_every_n_steps)."""
        job = ctx.engine.current_job
        running = job is not None and not job.finished
        count = len(ctx.engine.queued_jobs) + (1 if running else 0)
        if not running:
            return {"progress": 0.0, "eta_relative": 0.0, "state": _state(None, count), "current_image": None,
                    "textinfo": "Waiting..." if count else None}
        p = job.progress
        preview = None if skip_current_image else ctx.jobs.latest_preview(job)
        image = await to_thread.run_sync(encode_png, preview) if preview is not None else None
        if job.request is not None:
            text = f"{job.task}: {p.where}"
        else:  # a model load or an upscale
            text = f"{job.task} {job.model}".rstrip()
        return {"progress": p.fraction, "eta_relative": p.eta_seconds or 0.0, "state": _state(job, count),
                "current_image": image, "textinfo": text}

    @router.post("/interrupt")
    async def interrupt() -> dict[str, Any]:
        """Stop the running job at its next step; it returns what it made. Queued jobs go on (as A1111).
        Any body is accepted and ignored."""
        ctx.engine.interrupt()
        return {}

    @router.post("/skip")
    async def skip() -> dict[str, Any]:
        """End the running job's current batch; the job goes on with its next batch."""
        ctx.engine.skip()
        return {}

    return router


def _state(job, count: int) -> dict[str, Any]:
    if job is None:
        return {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "",
                "job_count": count, "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}
    p = job.progress
    return {
        "skipped": job.cancel.skipping,
        "interrupted": job.cancel.interrupted,
        "stopping_generation": False,
        "job": f"{job.task} {job.id}",
        "job_count": count,
        "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(job.created)),
        "job_no": 0,
        "sampling_step": p.step,
        "sampling_steps": p.total_steps,
    }
