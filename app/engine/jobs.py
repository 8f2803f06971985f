"""A job: one request on its way through the engine, with its own cancel token and progress."""

from __future__ import annotations

import itertools
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from app.generation.request import GenerationRequest

_ids = itertools.count(1)

QUEUED, RUNNING, DONE, FAILED, INTERRUPTED = "queued", "running", "done", "failed", "interrupted"


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

    @property
    def fraction(self) -> float:
        if self.state in (DONE, INTERRUPTED):
            return 1.0
        if not self.total_steps:
            return 0.0
        done = self.batch * self.total_steps + self.step
        return min(1.0, done / (self.total_batches * self.total_steps))


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
    """Created by Engine.submit. Front ends read `progress`, iterate `events()`, or block on `result()`."""

    def __init__(self, request: GenerationRequest):
        self.id = next(_ids)
        self.request = request
        self.cancel = CancelToken()
        self.created = time.time()
        self._progress = Progress(job_id=self.id, state=QUEUED, total_batches=request.batch_count)
        self.latest_preview = None  # the newest preview image (Progress carries it only on its own step)
        self._events: queue.Queue[Progress | None] = queue.Queue()
        self._subscribed = False  # set by events(); a finished job nobody listened to drops its snapshots
        self._events_lock = threading.Lock()
        self._done = threading.Event()
        self._result: GenerationResult | None = None
        self._error: BaseException | None = None

    @property
    def progress(self) -> Progress:
        return self._progress

    @property
    def state(self) -> str:
        return self._progress.state

    def report(self, progress: Progress) -> None:
        if progress.preview is not None:
            self.latest_preview = progress.preview
        self._progress = progress
        with self._events_lock:
            self._events.put(progress)

    def events(self, timeout: float | None = None):
        """Yield progress snapshots from now until the job ends (the last has state done/failed/interrupted).

        A front end that polls `progress` instead never calls this, and the job's snapshots (previews
        included) are dropped when it ends."""
        with self._events_lock:
            self._subscribed = True
            events = self._events
        while True:
            try:
                item = events.get(timeout=timeout)
            except queue.Empty:
                return
            if item is None:
                return
            yield item

    def finish(self, result: GenerationResult | None, error: BaseException | None = None) -> None:
        self._result, self._error = result, error
        if error is not None:
            state = FAILED
        elif result is not None and result.interrupted:
            state = INTERRUPTED
        else:
            state = DONE
        self.report(Progress(job_id=self.id, state=state, step=self._progress.step,
                             total_steps=self._progress.total_steps, batch=self._progress.batch,
                             total_batches=self._progress.total_batches,
                             message=str(error) if error else ""))
        with self._events_lock:
            if not self._subscribed:
                self._events = queue.Queue()
                self._events.put(self._progress)
            self._events.put(None)
            self._done.set()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> GenerationResult:
        """Wait for the job; raise its error (an EaselError for anything the user can fix)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.id} still {self.state} after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result
