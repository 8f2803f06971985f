"""List the model files and diffusers folders of a models tree without ever failing on a bad folder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from app.catalog.layout import CONTROLNET, MODEL_FILE_SUFFIXES, UNUSED_FOLDERS, role_of_folder
from app.controlnet.folder import is_model_folder

# How deep diffusers folders are looked for outside the category folders (root = level 0).
DIFFUSERS_SEARCH_DEPTH = 3
# How deep files are looked for inside a category folder (users sort models into subfolders).
CATEGORY_DEPTH = 6


@dataclass
class Listing:
    """files: (path, role of the category folder it sits in; None for a file loose in a root).
    controlnet_dirs: diffusers-format ControlNet folders (config.json + weights) in a controlnet folder.
    unused: (folder, what it holds, how many model files) for the folders of a root Easel does not use
    (layout.UNUSED_FOLDERS) that hold any model file."""

    files: list[tuple[Path, str | None]] = field(default_factory=list)
    diffusers_dirs: list[Path] = field(default_factory=list)
    controlnet_dirs: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unused: list[tuple[Path, str, int]] = field(default_factory=list)


def list_root(root: Path) -> Listing:
    """Files of every category folder of `root`, loose files in it, and diffusers folders (3 levels)."""
    out = Listing()
    _walk(root, None, 0, out, set())
    return out


def list_folder(folder: Path, role: str) -> Listing:
    """Files of one category folder (as named by an extra-paths config) and its subfolders.

    An absent folder is no error: configs list folders an install may never have made
    (ComfyUI's own template names RealESRGAN/ and SwinIR/)."""
    out = Listing()
    if folder.is_dir():
        _walk(folder, role, 0, out, set())
    return out


def _walk(folder: Path, role: str | None, depth: int, out: Listing, seen: set[str]) -> None:
    real = os.path.realpath(folder)
    if real in seen:  # symlink loops, or one folder linked twice
        return
    seen.add(real)
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as e:
        if depth == 0 and isinstance(e, FileNotFoundError):
            out.errors.append(f"models folder {folder} does not exist")
        else:
            out.errors.append(f"cannot read folder {folder}: {e.strerror or e}")
        return
    if any(e.name == "model_index.json" for e in entries):
        out.diffusers_dirs.append(folder)
        return
    if role == CONTROLNET and is_model_folder(e.name for e in entries):
        out.controlnet_dirs.append(folder)  # one model, named by its folder
        return
    for entry in entries:
        path = Path(entry.path)
        if _is_dir(entry):
            if entry.name.startswith("."):
                continue
            if depth == 0 and role is None and entry.name.lower() in UNUSED_FOLDERS:
                count = _count_model_files(path, CATEGORY_DEPTH)
                if count:
                    out.unused.append((path, UNUSED_FOLDERS[entry.name.lower()], count))
                continue
            child_role = role if role is not None else (role_of_folder(entry.name) if depth == 0 else None)
            limit = CATEGORY_DEPTH if child_role is not None else DIFFUSERS_SEARCH_DEPTH
            if depth + 1 <= limit:
                _walk(path, child_role, depth + 1, out, seen)
        elif path.suffix.lower() in MODEL_FILE_SUFFIXES and (role is not None or depth == 0):
            out.files.append((path, role))


def _count_model_files(folder: Path, depth: int) -> int:
    """Model files in `folder` and its subfolders down to `depth`; unreadable folders count as empty."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return 0
    count = 0
    for entry in entries:
        if _is_dir(entry):
            if depth > 0 and not entry.name.startswith(".") and not entry.is_symlink():
                count += _count_model_files(Path(entry.path), depth - 1)
        elif Path(entry.name).suffix.lower() in MODEL_FILE_SUFFIXES:
            count += 1
    return count


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows symlinks; a broken link is not a dir
    except OSError:
        return False
