"""Whether loading a diffusers folder would run Python code that came with the folder.

Easel loads with `trust_remote_code` off, so such a folder cannot load; the catalog says so instead
of listing it as ready. diffusers and transformers run a folder's own code in these cases, and only
these (a stray .py file or an auto_map beside a concrete class such as T5EncoderModel is never run):

- model_index.json's `_class_name` is a [module, class] pair: a custom pipeline in <module>.py.
- a component is declared [library, class] with a library other than diffusers or transformers
  (or a diffusers pipeline module such as "stable_diffusion"): diffusers imports <library>.py from
  the component's folder, or that library from wherever it is installed.
- a component is declared with an Auto class (AutoModel, AutoTokenizer, ...) and its config has an
  `auto_map`: transformers' remote code.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

LIBRARIES = ("diffusers", "transformers")
CUSTOM_CODE_SUFFIX = "Easel loads only diffusers and transformers classes"
# The files where an Auto class finds its auto_map.
CONFIG_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json")


def custom_code_problem(folder: Path, index: dict) -> str | None:
    """"needs custom code (...); Easel loads only ..." naming each piece of code, or None."""
    found: list[str] = []
    pipeline = index.get("_class_name")
    if isinstance(pipeline, list):
        found.append(f"pipeline: {_dotted(pipeline)}")
    for component, spec in index.items():
        if component.startswith("_") or not _declared(spec):
            continue
        library, class_name = str(spec[0]), str(spec[1])
        if library not in LIBRARIES and not _is_diffusers_pipeline_module(library):
            found.append(f"component {component}: {library}.{class_name}")
        elif _is_auto_class(class_name):
            remote = _auto_map_target(folder / component, class_name)
            if remote:
                found.append(f"component {component}: {class_name} with auto_map {remote}")
    if not found:
        return None
    return f"needs custom code ({'; '.join(found)}); {CUSTOM_CODE_SUFFIX}"


def _declared(spec: object) -> bool:
    return isinstance(spec, list) and len(spec) == 2 and bool(spec[0]) and bool(spec[1])


def _dotted(pair: list) -> str:
    return ".".join(str(p) for p in pair if p) or "unnamed"


def _is_auto_class(class_name: str) -> bool:
    # diffusers' Autoencoder* classes are concrete models, not Auto loaders
    return class_name.startswith("Auto") and not class_name.startswith("Autoencoder")


def _is_diffusers_pipeline_module(library: str) -> bool:
    """True for diffusers' own pipeline subpackages, found on disk without importing diffusers (and torch)."""
    if not library.isidentifier():
        return False
    spec = importlib.util.find_spec("diffusers")
    locations = spec.submodule_search_locations if spec is not None else None
    return any((Path(loc) / "pipelines" / library / "__init__.py").is_file() for loc in locations or ())


def _auto_map_target(component_dir: Path, class_name: str) -> str | None:
    """The code an Auto class would import from the component's config files, if any names one."""
    for name in CONFIG_FILES:
        try:
            config = json.loads((component_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        auto_map = config.get("auto_map") if isinstance(config, dict) else None
        if not isinstance(auto_map, dict) or not auto_map:
            continue
        target = auto_map.get(class_name, next(iter(auto_map.values())))
        if isinstance(target, list):  # tokenizers map to [slow, fast]
            target = next((t for t in target if t), None)
        return f"{target or 'code'} in {name}"
    return None
