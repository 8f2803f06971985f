"""Scan models folders and the Hugging Face cache into the catalog every other part of Easel reads.

Only headers are read. A bad file, folder or link becomes an entry or an error line, never an
exception: one corrupt download must not hide the other models.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.catalog.controlnet_folder import inspect_controlnet_folder
from app.controlnet.folder import is_flux_control_pipeline
from app.catalog.diffusers_folder import inspect_diffusers_folder
from app.catalog.entry import READY, UNREADABLE, ModelEntry
from app.catalog.extra_paths import ExtraFolders, read_extra_paths
from app.catalog.files import FoundFile, inspect_file
from app.catalog.hf_cache import cached_pipelines
from app.catalog.identify import GENERATION_KINDS
from app.catalog.layout import MODELS, TEXT_ENCODERS, VAE
from app.catalog.pairing import single_file_entry
from app.catalog.walk import Listing, list_folder, list_root
from app.errors import ModelNotFound

MAX_NAMES_IN_ERROR = 10


@dataclass(frozen=True)
class CatalogScan:
    """models: generation models, ready first then by name. files: every model-like file seen
    (LoRAs, upscalers, VAEs, encoders and ControlNets, a diffusers ControlNet folder as one file, are
    listed from here). errors: folders or config files that could not be read. unused_folders:
    (folder, what it holds, model files in it) for the folders of a models tree Easel does not use
    (embeddings/, ipadapter/ ...) that hold files."""

    models: list[ModelEntry]
    files: list[FoundFile]
    errors: list[str] = field(default_factory=list)
    unused_folders: list[tuple[Path, str, int]] = field(default_factory=list)

    def by_name(self, name: str) -> ModelEntry:
        """The model whose name or title is `name` (case-insensitive); ModelNotFound otherwise."""
        wanted = name.strip().lower()
        for entry in self.models:
            if wanted in (entry.name.lower(), entry.title.lower()):
                return entry
        names = [e.name for e in self.models]
        if not names:
            raise ModelNotFound(f"no model named {name!r}: no models were found")
        shown = ", ".join(names[:MAX_NAMES_IN_ERROR])
        more = f" and {len(names) - MAX_NAMES_IN_ERROR} more" if len(names) > MAX_NAMES_IN_ERROR else ""
        raise ModelNotFound(f"no model named {name!r}; available: {shown}{more}")

    def files_of_kind(self, *kinds: str) -> list[FoundFile]:
        """Usable files of these kinds (e.g. "lora", "upscaler", "vae", "controlnet"), sorted by file name."""
        chosen = [f for f in self.files if f.kind in kinds and f.usable]
        return sorted(chosen, key=lambda f: (f.path.name.lower(), str(f.path)))

    def unusable_files(self) -> list[FoundFile]:
        """Files Easel cannot use (each with its reason) that are not already listed as models: pickled,
        corrupt or foreign files in the LoRA, VAE, text-encoder, upscaler and ControlNet folders and loose
        in a root."""
        chosen = [f for f in self.files if not f.usable and not makes_model_entry(f)]
        return sorted(chosen, key=lambda f: str(f.path))


def scan_models(
    roots: Sequence[Path],
    hf_cache: Path | None = None,
    *,
    extra: ExtraFolders | None = None,
    extra_paths_file: Path | None = None,
) -> CatalogScan:
    """Scan `roots` (ComfyUI / A1111 models folders or folders of diffusers folders), extra folders
    (`extra` as read by extra_paths.read_extra_paths, or `extra_paths_file`, skipped when that file
    does not exist) and the Hugging Face cache `hf_cache`."""
    extras = [extra] if extra is not None else []
    if extra_paths_file is not None and Path(extra_paths_file).exists():
        extras.append(read_extra_paths(Path(extra_paths_file)))
    listings: list[tuple[Path, Listing]] = [(Path(r), list_root(Path(r))) for r in roots]
    errors: list[str] = []
    for more in extras:
        errors.extend(more.errors)
        listings += [(r, list_root(r)) for r in more.roots]
        listings += [(folder.parent, list_folder(folder, role)) for role, folder in more.folders]

    # Every file is read first: a model in one root pairs with encoders found in any other.
    seen: set[str] = set()
    scanned: list[tuple[list[FoundFile], list[Path]]] = []
    unused: list[tuple[Path, str, int]] = []
    for root, listing in listings:
        errors.extend(listing.errors)
        unused += [u for u in listing.unused if _first_time(u[0], seen)]
        found = [inspect_file(path, role, root) for path, role in listing.files if _first_time(path, seen)]
        found += [inspect_controlnet_folder(d, root) for d in listing.controlnet_dirs if _first_time(d, seen)]
        pipelines = [d for d in listing.diffusers_dirs if _first_time(d, seen)]
        # FLUX.1 Canny/Depth dev pipelines are ControlNet models to Easel, not models of their own
        found += [inspect_controlnet_folder(d, root) for d in pipelines if is_flux_control_pipeline(d)]
        scanned.append((found, [d for d in pipelines if not is_flux_control_pipeline(d)]))
    files = [f for found, _ in scanned for f in found]
    candidates = [f for f in files if f.role in (TEXT_ENCODERS, VAE, None)]

    entries: list[ModelEntry] = []  # in the order of the roots, so the first root keeps plain names
    for found, folders in scanned:
        for f in found:
            if f.kind in GENERATION_KINDS:
                entries.append(single_file_entry(f, f.path.stem, candidates))
            elif makes_model_entry(f):
                entries.append(_unreadable(f))
        entries += [inspect_diffusers_folder(d, d.name) for d in folders]
    if hf_cache is not None:
        cached, cache_errors = cached_pipelines(hf_cache)
        errors.extend(cache_errors)
        # The cache holds every kind of pipeline; only the ones Easel runs are listed.
        entries += [e for e in (inspect_diffusers_folder(d, n) for n, d in cached if _first_time(d, seen))
                    if e.family is not None]

    models = sorted(_unique_names(entries), key=lambda e: (e.status != READY, e.name.lower()))
    return CatalogScan(models=models, files=files, errors=errors, unused_folders=unused)


def makes_model_entry(f: FoundFile) -> bool:
    """A generation model file, or an unidentified file in a models folder (listed as an unreadable model)."""
    return f.kind in GENERATION_KINDS or (f.role == MODELS and f.kind == "unknown")


def _first_time(path: Path, seen: set[str]) -> bool:
    """False for a path already scanned through another root, link or config entry."""
    key = os.path.realpath(path)
    if key in seen:
        return False
    seen.add(key)
    return True


def _unreadable(f: FoundFile) -> ModelEntry:
    return ModelEntry(
        name=f.path.stem, family=None, variant=None, format="single-file", path=f.path,
        size_bytes=f.size_bytes, status=UNREADABLE, problems=(f"{f.path.name}: {f.reason}",),
        parts={"checkpoint": f.path},
    )


def _unique_names(entries: list[ModelEntry]) -> list[ModelEntry]:
    """Give the second "x" found "x (2)", the third "x (3)"; the first one found keeps its name."""
    taken: set[str] = set()
    out: list[ModelEntry] = []
    for entry in entries:
        name, n = entry.name, 1
        while name.lower() in taken:
            n += 1
            name = f"{entry.name} ({n})"
        taken.add(name.lower())
        out.append(entry if name == entry.name else replace(entry, name=name))
    return out

