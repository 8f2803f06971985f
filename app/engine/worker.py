"""The one thread that owns the GPU: takes jobs in FIFO order and runs them one at a time.

It survives anything a job does, BaseException included (an extension's SystemExit becomes that job's
error); only `stop()` ends it. Model loads and upscaler runs (`call`) are jobs of their own, so they show
in the queue, can be cancelled while they wait, and fail with the same user-facing errors as generations.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable

from app.engine.jobs import Job
from app.engine.signals import ChangeSignal
from app.errors import EaselError, OutOfMemory, UnreadableModel

log = logging.getLogger(__name__)

# What a failed job was doing, for its message, and the error kind a user sees.
_FAILURES: dict[str, tuple[str, type[EaselError]]] = {
    "load": ("loading {model}", UnreadableModel),
    "unload": ("unloading models", EaselError),
    "upscale": ("upscaling", EaselError),
}
_GENERATION_FAILURE = ("generation", EaselError)


class Worker:
    def __init__(self, run: Callable[[Job], object], name: str = "easel-gpu-worker"):
        self._run = run
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._pending: list[Job] = []
        self._lock = threading.Lock()
        self._current: Job | None = None
        self.changes = ChangeSignal()  # bumped when a job is queued, starts, ends or is cancelled
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._lock:
            self._pending.append(job)
        self._queue.put(job)
        self.changes.bump()

    def submit_call(self, fn: Callable[[], Any], *, task: str, model: str = "", source: str = "engine") -> Job:
        """Queue `fn` to run on the worker thread between generations, as a job of its own."""
        if not self._thread.is_alive():
            raise EaselError("the engine is stopped")
        job = Job(work=fn, task=task, model=model, source=source)
        self.submit(job)
        return job

    def call(self, fn: Callable[[], Any], *, task: str = "call", model: str = "", source: str = "engine") -> Any:
        """Run `fn` on the worker thread (after the jobs ahead of it) and return its result; its errors come
        back as user errors (out of memory says what to try).

        Called from the worker thread itself (a hook during a job), `fn` runs at once: waiting for the
        queue there would wait forever."""
        if self.on_worker_thread:
            return fn()
        job = self.submit_call(fn, task=task, model=model, source=source)
        while not job.wait_done(1.0):
            if not self._thread.is_alive():
                raise EaselError("the engine stopped before it could do this")
        return job.result()

    def cancel(self, job: Job, skip: bool = False) -> bool:
        """Interrupt (or skip the batch of) a running job; a queued one is taken out of the queue and ends
        now (a skip leaves it queued: it has no batch running). False when the job is not queued or running."""
        with self._lock:
            queued = job in self._pending
            if queued and not skip:
                self._pending.remove(job)
            active = queued or job is self._current
        if not active or job.finished:
            return False
        if queued and not skip:
            job.cancel.interrupt()
            job.finish_cancelled()
        elif skip:
            if not queued:
                job.cancel.skip()
        else:
            job.cancel.interrupt()
        self.changes.bump()
        return True

    def position(self, job: Job) -> int:
        """0 while running, n when n jobs are ahead of it, -1 when finished or unknown."""
        with self._lock:
            if job is self._current:
                return 0
            try:
                return self._pending.index(job) + (1 if self._current else 0)
            except ValueError:
                return -1

    @property
    def current(self) -> Job | None:
        return self._current

    @property
    def queued(self) -> list[Job]:
        with self._lock:
            return list(self._pending)

    @property
    def active(self) -> list[Job]:
        """The running job (when there is one), then the queued ones in order."""
        with self._lock:
            current = self._current
            jobs = ([current] if current is not None else []) + list(self._pending)
        return [job for job in jobs if not job.finished]

    @property
    def on_worker_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:  # stop(): the one way this thread ends
                return
            with self._lock:
                if job not in self._pending:  # cancelled while it waited: already finished
                    continue
                self._pending.remove(job)
                self._current = job
            self.changes.bump()
            try:
                self._run_one(job)
            finally:
                with self._lock:
                    self._current = None
                self.changes.bump()

    def _run_one(self, job: Job) -> None:
        try:
            if job.cancel.interrupted:
                job.finish_cancelled()
                return
            job.start()
            result = job.work() if job.work is not None else self._run(job)
            job.finish(result)
        except EaselError as exc:
            log.warning("job %s (%s) failed: %s", job.id, job.task, exc)
            job.finish(None, exc)
        except BaseException as exc:  # noqa: BLE001 - the worker survives anything a job or hook raises
            job.finish(None, as_user_error(exc, job))


def as_user_error(exc: BaseException, job: Job | None = None) -> EaselError:
    """An unexpected error as the user sees it: out of memory says what to try; anything else names
    what was being done and the error, on one line."""
    text = str(exc)
    if "out of memory" in text.lower() or type(exc).__name__ == "OutOfMemoryError":
        from app.engine.manager import free_device_memory

        free_device_memory()  # what the failed job held, so the next one starts clean
        return OutOfMemory(
            "the device ran out of memory. Try a smaller size or batch, or restart with --medvram or --lowvram "
            "(or --offload sequential)")
    log.error("job failed with an unexpected error", exc_info=exc)
    doing, kind = _FAILURES.get(job.task, _GENERATION_FAILURE) if job is not None and job.work else _GENERATION_FAILURE
    doing = doing.format(model=(job.model if job is not None else "") or "the model")
    first_line = text.splitlines()[0] if text else ""
    return kind(f"{doing} failed: {type(exc).__name__}: {first_line}".rstrip(": "))
