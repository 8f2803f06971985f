"""The settings file's one owner: every writer (the Settings tab, extension state, the API's options)
changes settings.json through `SettingsFile.update`, which reads, changes and replaces the file under
one lock, so no writer loses another's keys.

The lock is a thread lock for the object plus an `flock` on `.settings.json.lock` beside the file. An
flock belongs to an open file, so it also serialises other `SettingsFile` objects for the same path,
in this process or another one. Each write goes to a temporary file with a unique name in the same
folder, flushed to disk, then renamed over the file: a reader never sees half a file. (Windows has no
flock: there only the thread lock applies.)

A file that is not valid JSON is reported, never fatal: reading gives {} with a warning, and the next
write first sets the broken file aside as `settings.json.broken` so a hand edit is not lost.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from app.errors import EaselError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

log = logging.getLogger(__name__)
T = TypeVar("T")
NEW_FILE_MODE = 0o644


class SettingsFileError(EaselError):
    """The settings file could not be written (read-only folder, disk full ...)."""


class SettingsFile:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.lock")

    @property
    def broken_path(self) -> Path:
        return self.path.with_name(f"{self.path.name}.broken")

    def read(self) -> dict[str, Any]:
        """The whole file as a dict: {} when it is missing, and (with a warning) when it is broken."""
        data, problem = _load(self.path)
        if problem:
            log.warning("ignoring settings file %s: %s", self.path, problem)
        return data

    def update(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Call `change(data)` on the file's current contents under the lock and write what it leaves
        in `data`; returns what `change` returns. If `change` raises, the file is left as it was.
        `change` must not write the settings file itself (the lock is not re-entrant)."""
        with self._locked():
            data, problem = _load(self.path)
            if problem:
                self._set_aside_broken(problem)
            result = change(data)
            self._write(data)
            return result

    def merge(self, values: Mapping[str, Any]) -> None:
        """Set these top-level keys, keeping every other key in the file."""
        self.update(lambda data: data.update(values))

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                handle = open(self.lock_path, "a+b")
            except OSError as exc:
                raise SettingsFileError(f"cannot write the settings file {self.path}: {exc}") from None
            with handle:
                if fcntl is not None:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    self._remove_stale_temp_files()
                    yield
                finally:
                    if fcntl is not None:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _temp_prefix(self) -> str:
        return f".{self.path.name}."

    def _remove_stale_temp_files(self) -> None:
        """Temp files left by a writer that was killed mid-write (every live writer holds the lock)."""
        for stale in self.path.parent.glob(f"{self._temp_prefix()}*.tmp"):
            try:
                stale.unlink()
            except OSError:
                pass

    def _set_aside_broken(self, problem: str) -> None:
        try:
            os.replace(self.path, self.broken_path)
        except OSError as exc:
            log.warning("settings file %s is broken (%s) and could not be set aside: %s", self.path, problem, exc)
            return
        log.warning("settings file %s was broken (%s); kept it as %s and started a new one",
                    self.path, problem, self.broken_path)

    def _write(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
        try:
            mode = self.path.stat().st_mode & 0o777
        except OSError:
            mode = NEW_FILE_MODE
        tmp_name = None
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self.path.parent, prefix=self._temp_prefix(), suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as tmp:
                tmp.write(text)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.chmod(tmp_name, mode)
            os.replace(tmp_name, self.path)
        except OSError as exc:
            if tmp_name is not None:
                Path(tmp_name).unlink(missing_ok=True)
            raise SettingsFileError(f"cannot write the settings file {self.path}: {exc}") from None


def _load(path: Path) -> tuple[dict[str, Any], str | None]:
    """(contents, None), or ({}, what is wrong) for a file that is there but not a JSON object."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"cannot read it ({exc})"
    if not text.strip():
        return {}, None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        return {}, f"not valid JSON ({exc})"
    if not isinstance(data, dict):
        return {}, f"expected a JSON object, found {type(data).__name__}"
    return data, None


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")
