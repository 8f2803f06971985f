"""The engine's job lookup by id: every queued or running job, plus the newest finished ones.

A job still waiting or running is never dropped (the UI's Interrupt and Skip find it by id); finished
jobs beyond `keep_finished` are forgotten, oldest first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from app.engine.jobs import Job


class RecentJobs:
    def __init__(self, keep_finished: int):
        self._keep = keep_finished
        self._jobs: OrderedDict[int, Job] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
            finished = [j.id for j in self._jobs.values() if j.finished]
            for job_id in finished[:max(0, len(finished) - self._keep)]:
                del self._jobs[job_id]

    def get(self, job_id: int | None) -> Job | None:
        if job_id is None:
            return None
        with self._lock:
            return self._jobs.get(job_id)

    def __len__(self) -> int:
        return len(self._jobs)
