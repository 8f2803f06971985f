"""Which extensions are switched off: the `disabled_extensions` list in the settings file.

Only that key is read and written here, through the settings file's owner (its lock keeps every
other key, whoever writes it at the same time).
"""

from __future__ import annotations

from pathlib import Path

from app.settings_file import SettingsFile

DISABLED_KEY = "disabled_extensions"


def read_disabled(settings_file: Path) -> set[str]:
    return _names(SettingsFile(settings_file).read())


def write_disabled(settings_file: Path, names: set[str]) -> None:
    SettingsFile(settings_file).update(lambda data: data.__setitem__(DISABLED_KEY, sorted(names)))


def set_disabled(settings_file: Path, name: str, disabled: bool) -> set[str]:
    """Add `name` to the list (or take it off) in one locked read-modify-write; returns the new list."""

    def change(data: dict) -> set[str]:
        names = _names(data)
        names = names | {name} if disabled else names - {name}
        data[DISABLED_KEY] = sorted(names)
        return names

    return SettingsFile(settings_file).update(change)


def _names(data: dict) -> set[str]:
    names = data.get(DISABLED_KEY, [])
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()
