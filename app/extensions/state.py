"""Which extensions are switched off: the `disabled_extensions` list in the settings file.

Only that key is read and written here; the rest of the file is left as it is (written atomically).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
DISABLED_KEY = "disabled_extensions"


def read_disabled(settings_file: Path) -> set[str]:
    data = _read(Path(settings_file))
    names = data.get(DISABLED_KEY, [])
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()


def write_disabled(settings_file: Path, names: set[str]) -> None:
    path = Path(settings_file)
    data = _read(path)
    data[DISABLED_KEY] = sorted(names)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("settings file %s is not readable (%s); extensions start with none disabled", path, exc)
        return {}
    return data if isinstance(data, dict) else {}
