"""The one thread that owns the GPU: takes jobs in FIFO order and runs them one at a time."""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

from app.engine.jobs import Job
from app.errors import EaselError, OutOfMemory

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, run: Callable[[Job], object], name: str = "easel-gpu-worker"):
        self._run = run
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._pending: list[Job] = []
        self._lock = threading.Lock()
        self._current: Job | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._lock:
            self._pending.append(job)
        self._queue.put(job)

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
    def on_worker_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def call(self, fn: Callable[[], object]) -> object:
        """Run `fn` on the worker thread between jobs (model unload, refresh) and return its result.

        Called from the worker thread itself (a hook during a job), `fn` runs at once: waiting for the
        queue there would wait forever."""
        if self.on_worker_thread:
            return fn()
        if not self._thread.is_alive():
            raise EaselError("the engine is stopped")
        done = threading.Event()
        box: dict[str, object] = {}

        def task(_job=None):
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed back to the caller's thread
                box["error"] = exc
            finally:
                done.set()

        self._queue.put(_Call(task))  # type: ignore[arg-type]
        while not done.wait(1.0):
            if not self._thread.is_alive():
                raise EaselError("the engine stopped before it could do this")
        if "error" in box:
            raise box["error"]  # type: ignore[misc]
        return box.get("value")

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if isinstance(job, _Call):
                job.fn()
                continue
            with self._lock:
                if job in self._pending:
                    self._pending.remove(job)
                self._current = job
            try:
                if job.cancel.interrupted:
                    from app.engine.jobs import GenerationResult

                    job.finish(GenerationResult(interrupted=True))
                    continue
                result = self._run(job)
                job.finish(result)
            except EaselError as exc:
                log.warning("job %s failed: %s", job.id, exc)
                job.finish(None, exc)
            except Exception as exc:  # the worker must survive anything a job does
                job.finish(None, _as_user_error(exc))
            finally:
                with self._lock:
                    self._current = None


class _Call:
    def __init__(self, fn):
        self.fn = fn


def _as_user_error(exc: Exception) -> Exception:
    text = str(exc)
    if "out of memory" in text.lower() or type(exc).__name__ == "OutOfMemoryError":
        from app.engine.manager import free_device_memory

        free_device_memory()  # what the failed job held, so the next one starts clean
        return OutOfMemory(
            "the device ran out of memory. Try a smaller size or batch, or restart with --medvram or --lowvram "
            "(or --offload sequential)")
    log.exception("job failed with an unexpected error", exc_info=exc)
    return EaselError(f"generation failed: {type(exc).__name__}: {text.splitlines()[0] if text else ''}")
