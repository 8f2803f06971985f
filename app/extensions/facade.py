"""EaselFacade: everything an extension may use of the running app, and nothing of its internals."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from app import __version__
from app.generation.request import GenerationRequest
from app.presets import Preset, Style
from app.settings import Settings


class EaselFacade:
    """Catalog, generation, outputs, progress, presets and (frozen) settings."""

    version = __version__

    def __init__(self, engine, settings: Settings, presets: Mapping[str, Preset] | None = None):
        self._engine = engine
        self._settings = settings
        self._presets = MappingProxyType(dict(presets or {}))

    @property
    def settings(self) -> Settings:
        """Read-only: Settings is a frozen dataclass."""
        return self._settings

    def models(self, refresh: bool = False) -> list:
        """The ready models (`ModelEntry`: name, family, variant, label...)."""
        return [m for m in self._engine.models(refresh) if m.ready]

    def model_names(self) -> list[str]:
        return [m.name for m in self.models()]

    def upscaler_names(self) -> list[str]:
        return [u.name for u in self._engine.upscalers()]

    def generate(self, request: GenerationRequest, timeout: float | None = None):
        """Queue `request` like the UI does and wait for its `GenerationResult` (images, seeds, infotexts,
        paths). Extensions' adjust_request hooks apply to it too."""
        return self._engine.generate(request, timeout)

    def progress(self) -> Any:
        """The running job's `Progress` (step, total_steps, fraction, eta_seconds), or None when idle."""
        job = self._engine.current_job
        return job.progress if job is not None else None

    def save_image(self, image, *, infotext: str = "", seed: int = 0, task: str = "grids") -> Path:
        """Save a picture made by the extension in the outputs folder (`task`: grids, extras, txt2img...)."""
        return self._engine.save_extra(image, task=task, infotext=infotext, seed=seed)

    def presets(self) -> Mapping[str, Preset]:
        return self._presets

    def styles(self) -> list[Style]:
        """Every preset's styles, first of each name wins."""
        seen: dict[str, Style] = {}
        for preset in self._presets.values():
            for style in preset.styles:
                seen.setdefault(style.name, style)
        return list(seen.values())
