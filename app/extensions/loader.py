"""Importing one extension folder as a package, under a module name no other folder can take."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

MODULE_PREFIX = "easel_extension_"


def module_name_for(folder: Path) -> str:
    """Unique per folder path: two extensions named alike in different folders never share a module."""
    slug = re.sub(r"\W", "_", folder.name)
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:8]
    return f"{MODULE_PREFIX}{slug}_{digest}"


def import_folder(folder: Path) -> ModuleType:
    """Run `folder/__init__.py` as a fresh package (its relative imports work). Raises what it raises."""
    init = folder / "__init__.py"
    if not init.is_file():
        raise ImportError(f"{folder.name} has no __init__.py")
    name = module_name_for(folder)
    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[loaded]  # a reload (a second manager, an update) runs the new code
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(folder)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
