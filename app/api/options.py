"""The options of /sdapi/v1/options: one object per API instance, shared by its routes (no global).

GET is A1111's whole option set as a flat dict: Easel's value where it has one, the value a client
stored, else A1111's default. POSTed values are kept in the settings file under "a1111_options"
(through the file's one owner, so the UI's settings and extension state are never clobbered) and are
read back at the next start. See app/api/option_values.py for what Easel does with each option.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from app.api.a1111_options import A1111_DEFAULTS
from app.api.checkpoints import find_checkpoint
from app.api.option_values import READ_ONLY, STORED, USED, checked, read_only_values
from app.catalog.entry import ModelEntry
from app.errors import EaselError, InvalidRequest, ModelNotFound
from app.settings import Settings
from app.settings_file import SettingsFile

log = logging.getLogger(__name__)
DEFAULT_PREVIEW_EVERY = 3
SETTINGS_KEY = "a1111_options"
HashOf = Callable[[ModelEntry], tuple[str | None, str | None]]  # entry -> (short hash, sha256)


class ApiOptions:
    """sd_model_checkpoint: the model API requests use when they name none (None: the engine's default).
    show_progress_every_n_steps and live_previews_enable: how often API jobs decode a preview."""

    def __init__(self, engine, settings: Settings, *, preview_every: int = DEFAULT_PREVIEW_EVERY):
        self._engine = engine
        self._settings = settings
        self._file = SettingsFile(settings.settings_file)
        self._lock = threading.Lock()  # guards the values below
        self._store_lock = threading.Lock()  # one store at a time: the file and memory agree
        self._values: dict[str, Any] = {"show_progress_every_n_steps": preview_every}
        self._values.update(self._saved_values())
        self._model: str | None = None
        self._pending_title: str | None = self._values.get("sd_model_checkpoint")  # resolved on first use

    def _saved_values(self) -> dict[str, Any]:
        saved = self._file.read().get(SETTINGS_KEY, {})
        if not isinstance(saved, dict):
            log.warning("ignoring %r in %s: expected an object of options", SETTINGS_KEY, self._file.path)
            return {}
        values = {}
        for name, value in saved.items():
            if name not in STORED:
                continue
            try:
                values[name] = checked(name, value)
            except InvalidRequest as exc:
                log.warning("ignoring saved option in %s: %s", self._file.path, exc)
        return values

    @property
    def model(self) -> str | None:
        """Name of the selected model, None when none was selected (the engine picks)."""
        with self._lock:
            if self._pending_title is not None:
                title, self._pending_title = self._pending_title, None
                try:
                    self._model = find_checkpoint(self._engine, title).name
                except EaselError as exc:
                    log.warning("saved sd_model_checkpoint %r is not available (%s); API requests use the "
                                "default model", title, exc)
            return self._model

    @property
    def preview_every(self) -> int:
        with self._lock:
            if not self._values.get("live_previews_enable", True):
                return 0
            return max(0, self._values["show_progress_every_n_steps"])

    def select_model(self, title: str) -> str:
        """Select the model `title` names (ModelNotFound otherwise) and keep the choice; returns its name."""
        entry = find_checkpoint(self._engine, title)
        self._store({"sd_model_checkpoint": entry.title}, entry)
        return entry.name

    def current_entry(self) -> ModelEntry | None:
        """The model a request naming none would use, None when there is none."""
        try:
            name = self.model
            return find_checkpoint(self._engine, name) if name else self._engine.resolve_model(None)
        except EaselError:
            return None

    def current_title(self) -> str | None:
        entry = self.current_entry()
        return entry.title if entry else None

    def snapshot(self, hash_of: HashOf | None = None) -> dict[str, Any]:
        """Every A1111 option with its value (a flat dict, as A1111's GET returns)."""
        entry = self.current_entry()
        with self._lock:
            stored = dict(self._values)
        values = {**A1111_DEFAULTS, **stored, **read_only_values(self._settings)}
        values["sd_model_checkpoint"] = entry.title if entry else None
        if entry is not None and hash_of is not None:
            values["sd_checkpoint_hash"] = hash_of(entry)[1] or ""
        return values

    def update(self, values: Mapping[str, Any]) -> dict[str, list[str]]:
        """Check every value, then keep and apply them all (or, on any error, none)."""
        changes = {name: checked(name, value) for name, value in values.items() if name in STORED}
        for name in values:
            if name in READ_ONLY:
                checked(name, values[name])
        entry = None
        title = changes.get("sd_model_checkpoint")
        if title is not None:
            try:
                entry = find_checkpoint(self._engine, title)  # before anything changes
            except ModelNotFound as exc:
                raise ModelNotFound(f"sd_model_checkpoint: {exc}") from None
            changes["sd_model_checkpoint"] = entry.title
        self._store(changes, entry)
        return _report(values)

    def _store(self, changes: dict[str, Any], entry: ModelEntry | None) -> None:
        """Write `changes` to the settings file, then apply them here (a failed write changes nothing).
        Only values that differ from what GET shows are written: posting back a GET adds nothing."""
        with self._store_lock:
            with self._lock:
                changed = {name: value for name, value in changes.items()
                           if self._values.get(name, A1111_DEFAULTS[name]) != value}
            if changed:
                self._file.update(lambda data: _merge_section(data, changed))
            with self._lock:
                self._values.update(changes)
                if "sd_model_checkpoint" in changes:
                    self._model = entry.name if entry else None
                    self._pending_title = None


def _merge_section(data: dict[str, Any], changes: Mapping[str, Any]) -> None:
    section = data.get(SETTINGS_KEY)
    if not isinstance(section, dict):
        section = {}
    section.update(changes)
    data[SETTINGS_KEY] = section


# What a posted key did, by the first group that holds it (else "unknown": no A1111 option).
_KINDS = (("updated", USED), ("read_only", READ_ONLY), ("kept", STORED))


def _report(values: Mapping[str, Any]) -> dict[str, list[str]]:
    """Which posted keys Easel applied, and which changed nothing in Easel (and why)."""
    report: dict[str, list[str]] = {"updated": [], "ignored": [], "kept": [], "read_only": [], "unknown": []}
    for name in values:
        kind = next((kind for kind, names in _KINDS if name in names), "unknown")
        report[kind].append(name)
        if kind != "updated":
            report["ignored"].append(name)
    return report
