"""What the API's routes share: one object built by `create_api`, never a module global."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.api.hashes import ModelHashes
from app.api.jobs import JobTracker
from app.api.options import ApiOptions
from app.settings import Settings


@dataclass
class ApiContext:
    engine: Any  # app.engine.engine.Engine (Any: tests may pass a stand-in)
    settings: Settings
    options: ApiOptions
    jobs: JobTracker
    hashes: ModelHashes
    flags: dict[str, Any] = field(default_factory=dict)  # API flags shown by /cmd-flags (no secrets)

    @classmethod
    def build(cls, engine, settings: Settings, *, flags: dict[str, Any] | None = None) -> ApiContext:
        return cls(
            engine=engine,
            settings=settings,
            options=ApiOptions(engine),
            jobs=JobTracker(engine),
            hashes=ModelHashes(settings.models_dir / ".easel-hashes.json"),
            flags=dict(flags or {}),
        )
