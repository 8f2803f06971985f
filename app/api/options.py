"""The options of /sdapi/v1/options: one object per API instance, shared by its routes (no global).

Only options that mean something to Easel are kept; others sent by clients are reported as ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from app.api.checkpoints import find_checkpoint
from app.errors import EaselError, InvalidRequest, ModelNotFound
from app.generation.request import MAX_STEPS

DEFAULT_PREVIEW_EVERY = 3
# Read-only values some clients read; setting them has no effect.
_FIXED = {"samples_format": "png", "sd_vae": "Automatic", "CLIP_stop_at_last_layers": 1}


class ApiOptions:
    """sd_model_checkpoint: the model API requests use when they name none (None: the engine's default).
    show_progress_every_n_steps: how often API jobs decode a preview for /progress (0: never)."""

    def __init__(self, engine, *, preview_every: int = DEFAULT_PREVIEW_EVERY):
        self._engine = engine
        self._lock = threading.Lock()
        self._model: str | None = None
        self._preview_every = preview_every

    @property
    def model(self) -> str | None:
        """Name of the selected model, None when none was selected (the engine picks)."""
        with self._lock:
            return self._model

    @property
    def preview_every(self) -> int:
        with self._lock:
            return self._preview_every

    def select_model(self, title: str) -> str:
        """Select the model `title` names (ModelNotFound otherwise); returns its name."""
        entry = find_checkpoint(self._engine, title)
        with self._lock:
            self._model = entry.name
        return entry.name

    def current_title(self) -> str | None:
        """Title of the model a request naming none would use, None when there is none."""
        try:
            name = self.model
            entry = find_checkpoint(self._engine, name) if name else self._engine.resolve_model(None)
        except EaselError:
            return None
        return entry.title

    def snapshot(self) -> dict[str, Any]:
        return {
            "sd_model_checkpoint": self.current_title(),
            "show_progress_every_n_steps": self.preview_every,
            **_FIXED,
        }

    def update(self, values: Mapping[str, Any]) -> dict[str, list[str]]:
        """Apply what Easel knows; every value is checked before any is applied."""
        title = values.get("sd_model_checkpoint")
        if "sd_model_checkpoint" in values and not isinstance(title, str):
            raise InvalidRequest("sd_model_checkpoint", "expected a model title (see /sdapi/v1/sd-models)")
        every = values.get("show_progress_every_n_steps")
        if "show_progress_every_n_steps" in values:
            if isinstance(every, bool) or not isinstance(every, int) or not 0 <= every <= MAX_STEPS:
                raise InvalidRequest("show_progress_every_n_steps",
                                     f"{every!r} is out of range: allowed 0..{MAX_STEPS}")
        if title is not None:
            try:
                find_checkpoint(self._engine, title)  # before anything changes
            except ModelNotFound as exc:
                raise ModelNotFound(f"sd_model_checkpoint: {exc}") from None
        updated = []
        if title is not None:
            self.select_model(title)
            updated.append("sd_model_checkpoint")
        if every is not None:
            with self._lock:
                self._preview_every = every
            updated.append("show_progress_every_n_steps")
        ignored = [key for key in values if key not in updated]
        return {"updated": updated, "ignored": ignored}
