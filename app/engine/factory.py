"""The one way a front end makes its engine: the web UI, `--nowebui` and the CLI all call `build_engine`.

    engine = build_engine(settings)           # extensions loaded, one hash cache, stale temp files gone
    engine.extensions.api_router(...)         # the same ExtensionManager the engine calls

Everything a front end shares with the engine is made here once per process and reached through the
engine (`engine.extensions`, `engine.hash_cache`, `engine.settings`), so no front end can end up with
an engine that silently skips the extensions or keeps a second hash cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

DEFAULT_EXTENSIONS_DIR = PROJECT_ROOT / "extensions"


def build_engine(settings: Settings, *, extensions_dir: Path | None = None, load_extensions: bool = True,
                 warm_up: bool = False):
    """The engine with its extensions (from `extensions_dir`, default the settings' or ./extensions),
    the process's hash cache and output folder checked. `warm_up` starts the background scan and heavy
    imports; jobs submitted meanwhile wait for it instead of racing it."""
    from app.engine.engine import Engine
    from app.extensions.manager import ExtensionManager
    from app.generation.model_hash import HashCache
    from app.generation.outputs import remove_stale_temporaries

    extensions = None
    if load_extensions:
        folder = Path(extensions_dir or settings.extensions_dir or DEFAULT_EXTENSIONS_DIR)
        extensions = ExtensionManager.from_settings(settings, folder)
        for record in extensions.records.values():
            if record.errors:
                log.warning("extension %s: %s", record.name, "; ".join(record.errors))
    removed = remove_stale_temporaries(Path(settings.outputs_dir))
    if removed:
        log.info("removed %d unfinished image file(s) left by a stopped Easel in %s", removed, settings.outputs_dir)
    engine = Engine(settings, hooks=extensions, hash_cache=HashCache(settings.models_dir / ".easel-hashes.json"))
    if warm_up:
        engine.warm_up()
    return engine
