"""A job: one piece of work on its way through the engine's worker, with its own cancel token and progress.

Most jobs are generations (a GenerationRequest). Model loads, unloads and upscaler runs are jobs too
(`work` set, no request), so they show in the queue and can be cancelled while they wait.

Memory stays bounded: a job keeps only its newest Progress and newest preview for pollers; snapshots
are queued only for listeners of `events()`, in a bounded queue; `release()` lets go of the images once
a front end has delivered them.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.engine.signals import ChangeSignal, Subscription
from app.errors import EaselError, Interrupted
from app.generation.request import GenerationRequest

_ids = itertools.count(1)

QUEUED, RUNNING, DONE, FAILED, INTERRUPTED = "queued", "running", "done", "failed", "interrupted"
FINAL_STATES = (DONE, FAILED, INTERRUPTED)
EVENTS_KEPT = 16  # snapshots waiting for a slow listener of events(); older ones are dropped


class JobNotFound(EaselError):
    """No queued or running job has that id (it never existed, or it has finished)."""


@dataclass(frozen=True)
class Progress:
    """A snapshot of where a job is. `image` counts from 0 over the whole job (batch_count x batch_size)."""

    job_id: int
    state: str
    step: int = 0
    total_steps: int = 0
    batch: int = 0  # which batch (0-based) of batch_count
    total_batches: int = 1
    eta_seconds: float | None = None
    preview: Any = None  # PIL image, when previews are asked for
    message: str = ""
    stage: str = ""  # the pass running in a job of several ("first pass", "hires fix"); "" in one-pass jobs
    stage_index: int = 0
    total_stages: int = 1
    tile: int = 0  # which tile (0-based) of a tiled pass; total_tiles 0 in passes that are not tiled
    total_tiles: int = 0

    @property
    def fraction(self) -> float:
        if self.state in (DONE, INTERRUPTED):
            return 1.0
        if not self.total_steps:
            return 0.0
        in_stage = self.step / self.total_steps
        if self.total_tiles:
            in_stage = (self.tile + in_stage) / self.total_tiles
        in_batch = (self.stage_index + in_stage) / max(1, self.total_stages)
        return min(1.0, (self.batch + in_batch) / self.total_batches)

    @property
    def where(self) -> str:
        """"batch 1/2 · hires fix 2/2 · step 5/10" ("· tile 3/16" in a tiled pass), the parts that say something."""
        parts = [f"batch {self.batch + 1}/{self.total_batches}"] if self.total_batches > 1 else []
        if self.stage:
            parts.append(f"{self.stage} {self.stage_index + 1}/{self.total_stages}")
        if self.total_tiles:
            parts.append(f"tile {self.tile + 1}/{self.total_tiles}")
        return " · ".join([*parts, f"step {self.step}/{self.total_steps}"])


@dataclass
class GenerationResult:
    """What a job made. Images are PIL images in order; seeds[i] and infotexts[i] belong to images[i]."""

    images: list[Any] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    paths: list[Any] = field(default_factory=list)
    model: str = ""
    clip_tokens: int = 0
    clip_tokens_dropped: int = 0
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0
    extra_images: list[Any] = field(default_factory=list)  # shown beside the images: ControlNet's detected maps


class CancelToken:
    """Interrupt stops the job at the next step and keeps what is done; skip ends only the current batch."""

    def __init__(self) -> None:
        self._interrupt = threading.Event()
        self._skip = threading.Event()

    def interrupt(self) -> None:
        self._interrupt.set()

    def skip(self) -> None:
        self._skip.set()

    @property
    def interrupted(self) -> bool:
        return self._interrupt.is_set()

    @property
    def skipping(self) -> bool:
        return self._skip.is_set()

    def stop_current_batch(self) -> bool:
        return self._interrupt.is_set() or self._skip.is_set()

    def clear_skip(self) -> None:
        self._skip.clear()


class Job:
    """Made by Engine.submit (or the worker, for a load or an upscale). Front ends read `progress`, iterate
    `events()`, block on `result()`, or `await wait()` / `await next_change()` without holding a thread.

    `source` says who asked ("api", "ui:txt2img", "engine"); `task` and `model` are what the queue shows."""

    def __init__(self, request: GenerationRequest | None = None, *, source: str = "engine", task: str | None = None,
                 model: str | None = None, work: Callable[[], Any] | None = None):
        if request is None and work is None:
            raise ValueError("a job needs a request or work to do")
        self.id = next(_ids)
        self.request = request
        self.work = work
        self.task = task or (request.task if request is not None else "call")
        self.model = model if model is not None else ((request.model or "") if request is not None else "")
        self.source = source
        self.cancel = CancelToken()
        self.created = time.time()
        self.started_at: float | None = None  # time.monotonic() when the worker took it, and when it ended
        self.ended_at: float | None = None
        self._progress = Progress(job_id=self.id, state=QUEUED,
                                  total_batches=request.batch_count if request is not None else 1)
        self.latest_preview = None  # the newest preview image (Progress carries it only on its own step)
        self._lock = threading.Lock()
        self._subscribers: list[Subscription[Progress]] = []
        self._changes = ChangeSignal()
        self._done = threading.Event()
        self._result: Any = None
        self._error: BaseException | None = None
        self.released = False

    @property
    def progress(self) -> Progress:
        return self._progress

    @property
    def state(self) -> str:
        return self._progress.state

    @property
    def prompt(self) -> str:
        return self.request.prompt if self.request is not None else ""

    @property
    def version(self) -> int:
        """Bumped by every report and by the end: pass it to `next_change`."""
        return self._changes.version

    def report(self, progress: Progress) -> None:
        with self._lock:
            if progress.preview is not None:
                self.latest_preview = progress.preview
            self._progress = progress
            for subscriber in self._subscribers:
                subscriber.put(progress)
        self._changes.bump()

    def start(self) -> None:
        """The worker took the job: running from now (steps follow once a generation's model is loaded)."""
        self.started_at = time.monotonic()
        self.report(Progress(job_id=self.id, state=RUNNING, total_batches=self._progress.total_batches))

    def events(self, timeout: float | None = None) -> Iterator[Progress]:
        """The job's current snapshot, then every later one until the job ends (the last one has state
        done, failed or interrupted). Stops early when nothing comes for `timeout` seconds.

        Listening starts at this call (not at the first `next`). A listener slower than the job may miss
        intermediate snapshots (at most EVENTS_KEPT wait for it), never the final one."""
        subscriber: Subscription[Progress] = Subscription(EVENTS_KEPT)
        with self._lock:
            subscriber.put(self._progress)
            if self._done.is_set():
                subscriber.close()
            else:
                self._subscribers.append(subscriber)
        return self._follow(subscriber, timeout)

    def _follow(self, subscriber: Subscription[Progress], timeout: float | None) -> Iterator[Progress]:
        try:
            yield from subscriber.items(timeout)
        finally:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

    async def next_change(self, seen: int, timeout: float | None = None) -> int:
        """Wait (in asyncio, holding no thread) until the job changed since version `seen`; the version now."""
        return await self._changes.wait_async(seen, timeout)

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait (in asyncio, holding no thread) until the job ends; False when `timeout` passed first."""
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            seen = self._changes.version  # read before the check: an end in between bumps past it
            if self._done.is_set():
                return True
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            await self._changes.wait_async(seen, left)

    def wait_done(self, timeout: float | None = None) -> bool:
        """Block this thread until the job ends; False when `timeout` passed first."""
        return self._done.wait(timeout)

    def finish(self, result: Any, error: BaseException | None = None) -> None:
        if error is not None:
            state = FAILED
        elif getattr(result, "interrupted", False):
            state = INTERRUPTED
        else:
            state = DONE
        p = self._progress
        final = Progress(job_id=self.id, state=state, step=p.step, total_steps=p.total_steps, batch=p.batch,
                         total_batches=p.total_batches, message=str(error) if error else "")
        with self._lock:
            self.ended_at = time.monotonic()
            self._result, self._error = result, error
            self._progress = final
            self.latest_preview = None  # a preview is for a running job only
            for subscriber in self._subscribers:
                subscriber.put(final)
                subscriber.close()
            self._subscribers = []
            self._done.set()
        self._changes.bump()

    def finish_cancelled(self) -> None:
        """End a job that never started: a generation with no images, other work with Interrupted."""
        if self.request is not None:
            self.finish(GenerationResult(interrupted=True, model=self.model))
        else:
            self.finish(None, Interrupted(f"{self.task} was cancelled before it started"))

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job; raise its error (an EaselError for anything the user can fix)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.id} still {self.state} after {timeout} s")
        if self._error is not None:
            raise self._error
        return self._result

    def release(self) -> None:
        """The front end has delivered the images: keep only the metadata (seeds, infotexts, paths)."""
        with self._lock:
            if isinstance(self._result, GenerationResult) and self._result.images:
                self._result = dataclasses.replace(self._result, images=[])
            self.released = True
