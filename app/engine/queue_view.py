"""What the Queue panel and GET /sdapi/v1/queue show: one row per queued or running job."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

PROMPT_SHOWN = 80  # characters of the prompt a queue row shows

# Who asked, as people read it; a UI tab is "ui:<tab>".
_WHO = {"api": "API", "engine": "Easel", "cli": "CLI", "extension": "extension"}
_UI_PREFIX = "ui:"


@dataclass(frozen=True)
class QueueEntry:
    id: int
    task: str
    state: str  # queued / running
    position: int  # 0 running, n: n jobs ahead
    prompt: str  # shortened
    model: str
    progress: float  # 0..1
    step: int
    total_steps: int
    source: str
    who: str
    created: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def who(source: str) -> str:
    if source.startswith(_UI_PREFIX):
        return f"UI · {source[len(_UI_PREFIX):]}"
    return _WHO.get(source, source)


def short_prompt(text: str, limit: int = PROMPT_SHOWN) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def queue_entries(engine) -> list[QueueEntry]:
    """The running job first, then the queued ones in the order they will run."""
    out = []
    for position, job in enumerate(engine.active_jobs):
        p = job.progress
        out.append(QueueEntry(id=job.id, task=job.task, state=p.state, position=position,
                              prompt=short_prompt(job.prompt), model=job.model, progress=round(p.fraction, 4),
                              step=p.step, total_steps=p.total_steps, source=job.source, who=who(job.source),
                              created=job.created))
    return out
