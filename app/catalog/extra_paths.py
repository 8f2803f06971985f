"""Read ComfyUI's extra_model_paths.yaml: more folders to scan, so models are never copied.

Format (ComfyUI's): top-level sections, each with an optional base_path (relative to the YAML
file, ~ and $VARS expanded) and category keys whose values are one path, a multi-line string of
paths, or a list, each relative to base_path:

    a111:
        base_path: ~/stable-diffusion-webui/
        checkpoints: models/Stable-diffusion
        loras: |
            models/Lora
            models/LyCORIS

Categories Easel does not use (embeddings, configs...) are ignored. A section whose
base_path is an A1111 / Forge install (it has models/Stable-diffusion) also adds that models/
folder as a root; a section with no category keys adds base_path/models (or base_path) as a root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from app.catalog.layout import CONFIG_ROLES


@dataclass(frozen=True)
class ExtraFolders:
    """roots: models folders to scan like --models-dir; folders: (role, category folder)."""

    roots: list[Path] = field(default_factory=list)
    folders: list[tuple[str, Path]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def read_extra_paths(config: Path) -> ExtraFolders:
    """Parse `config`; problems come back in ExtraFolders.errors (naming the file and line), never raised."""
    try:
        text = config.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return ExtraFolders(errors=[f"{config}: cannot read ({getattr(e, 'strerror', None) or e})"])
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return ExtraFolders(errors=[_yaml_error(config, e)])
    if data is None:
        return ExtraFolders()
    if not isinstance(data, dict):
        return ExtraFolders(errors=[f"{config}: expected sections of folders (name: {{base_path: ...}})"])

    roots: list[Path] = []
    folders: list[tuple[str, Path]] = []
    errors: list[str] = []
    for section, conf in data.items():
        if conf is None:
            continue
        if not isinstance(conf, dict):
            errors.append(f"{config}: section {section!r} should hold base_path and folder keys")
            continue
        base = _expand(conf.get("base_path") or ".", config.parent)
        if not base.is_dir():
            errors.append(f"{config}: section {section!r}: base_path {base} does not exist")
            continue
        categories = [k for k in conf if k in CONFIG_ROLES]
        if (base / "models" / "Stable-diffusion").is_dir():
            roots.append(base / "models")
        elif not categories:
            roots.append(base / "models" if (base / "models").is_dir() else base)
        for key in categories:
            paths = _paths(conf[key])
            if paths is None:
                errors.append(f"{config}: section {section!r}: {key} should be a path or a list of paths")
                continue
            folders.extend((CONFIG_ROLES[key], _expand(p, base)) for p in paths)
    return ExtraFolders(roots, folders, errors)


def _yaml_error(config: Path, e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    where = f" at line {mark.line + 1}" if mark is not None else ""
    return f"{config}: invalid YAML{where}: {problem}"


def _paths(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    return None


def _expand(value: object, base: Path) -> Path:
    path = Path(os.path.expandvars(os.path.expanduser(str(value).strip())))
    # Lexical normalisation, as ComfyUI does (os.path.abspath): "easel/../ComfyUI" -> "ComfyUI".
    return Path(os.path.normpath(path if path.is_absolute() else base / path))
