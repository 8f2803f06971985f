"""What the API's routes share: one object built by `create_api`, never a module global."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.api.hashes import ModelHashes
from app.api.jobs import JobTracker
from app.api.options import ApiOptions
from app.generation.model_hash import HashCache
from app.settings import Settings


@dataclass
class ApiContext:
    engine: Any  # app.engine.engine.Engine (Any: tests may pass a stand-in)
    settings: Settings
    options: ApiOptions
    jobs: JobTracker
    hashes: ModelHashes
    hash_cache: HashCache  # the engine's: ControlNet models are listed with their hashes
    flags: dict[str, Any] = field(default_factory=dict)  # API flags shown by /cmd-flags (no secrets)

    @classmethod
    def build(cls, engine, settings: Settings, *, flags: dict[str, Any] | None = None) -> ApiContext:
        cache = _hash_cache_of(engine, settings)
        return cls(
            engine=engine,
            settings=settings,
            options=ApiOptions(engine, settings),
            jobs=JobTracker(engine),
            hashes=ModelHashes(cache),
            hash_cache=cache,
            flags=dict(flags or {}),
        )


def _hash_cache_of(engine, settings: Settings) -> HashCache:
    """The engine's hash cache (stand-in engines in tests may have none: then one of our own)."""
    cache = getattr(engine, "hash_cache", None)
    return cache if cache is not None else HashCache(settings.models_dir / ".easel-hashes.json")
