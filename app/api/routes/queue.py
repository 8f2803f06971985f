"""GET /queue and POST /queue/{job_id}/cancel: every queued and running job, and cancelling one.

Not part of A1111's API (its /interrupt stops only the running job): Easel's queue is shared by the
web UI and the API, so a client can see what waits before its request and cancel one job by its id.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from app.api.context import ApiContext
from app.engine.jobs import JobNotFound
from app.engine.queue_view import queue_entries


class QueueItem(BaseModel):
    id: int
    task: str
    state: str
    position: int
    prompt: str
    model: str
    progress: float
    step: int
    total_steps: int
    source: str
    who: str
    created: float


class QueueResponse(BaseModel):
    jobs: list[QueueItem]


class CancelResponse(BaseModel):
    id: int
    cancelled: bool
    state: str


def queue_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["queue"])

    @router.get("/queue", response_model=QueueResponse)
    async def queue() -> dict[str, Any]:
        """Every queued and running job, the running one first, then in the order they will run: id, task
        (txt2img, img2img, inpaint, load, upscale...), state, position (0: running, n: n jobs ahead), prompt
        (shortened), model, progress (0..1), step / total_steps, and who asked (`source`: "api", "ui:<tab>";
        `who`: the same for people)."""
        return {"jobs": [entry.as_dict() for entry in queue_entries(ctx.engine)]}

    @router.post("/queue/{job_id}/cancel", response_model=CancelResponse)
    async def cancel(job_id: int, skip: bool = False) -> dict[str, Any]:
        """Cancel one job by its id (from GET /sdapi/v1/queue). A running job stops at its next step and its
        request answers with what it made; a queued one leaves the queue and its request answers with no
        images. `?skip=true` ends only the running job's current batch. 404 when no queued or running job
        has that id."""
        try:
            job = ctx.engine.cancel(job_id, skip=skip)
        except JobNotFound as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        return {"id": job.id, "cancelled": True, "state": job.state}

    return router
