"""Load a catalog entry into a diffusers pipeline, offline, and switch tasks without reloading weights."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

from app.catalog.entry import ModelEntry
from app.errors import MissingModelFiles, UnreadableModel
from app.families import FamilyAdapter

log = logging.getLogger(__name__)


def base_task(family: FamilyAdapter, variant: str | None) -> str:
    """The task a model is loaded for: txt2img, or the first it has (FLUX.1 Fill has only inpaint)."""
    return family.capabilities_for(variant).tasks[0]


def load_base_pipeline(entry: ModelEntry, family: FamilyAdapter, dtype, *, models_root: Path,
                       hf_cache: Path | None = None):
    """The family's pipeline for `entry`'s base task, weights in `dtype`, on the CPU (the plan places it)."""
    cls = family.pipeline_class(base_task(family, entry.variant), entry.variant)
    if entry.format == "diffusers":
        pipe = _from_diffusers_folder(cls, Path(entry.path), dtype)
    else:
        from app.families.single_file import load_single_file_components

        components = load_single_file_components(entry, dtype, models_root=models_root, hf_cache=hf_cache)
        pipe = cls(**_expected_components(cls, components))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _from_diffusers_folder(cls, folder: Path, dtype):
    try:
        return cls.from_pretrained(str(folder), dtype=dtype, local_files_only=True)
    except OSError as exc:
        # diffusers/transformers name the missing file in the message; add where it belongs.
        raise MissingModelFiles(
            f"{folder.name}: cannot load offline: {_first_line(exc)}. "
            f"Copy the complete folder (all subfolders of model_index.json) to {folder}"
        ) from None
    except (ValueError, RuntimeError, KeyError) as exc:
        raise UnreadableModel(f"{folder.name}: the diffusers folder at {folder} cannot be loaded: {_first_line(exc)}") from None


def switch_task(pipe, family: FamilyAdapter, task: str, variant: str | None = None, extra: dict[str, Any] | None = None,
                kinds=frozenset()):
    """The task's pipeline class over the SAME component objects: nothing reloaded, nothing cast.
    `extra`: components an add-on brings ({"controlnet": model}); their names, with `kinds`, pick the
    pipeline class.

    diffusers' `from_pipe` without `dtype=` casts shared modules to float32 in place and refuses quantized
    components, so the new pipeline is built directly from `pipe.components`.
    """
    extra = extra or {}
    cls = family.pipeline_class(task, variant, frozenset(extra) | frozenset(kinds))
    if type(pipe) is cls:
        return pipe
    new = cls(**_expected_components(cls, {**pipe.components, **extra}))
    new.set_progress_bar_config(disable=True)
    return new


def _expected_components(cls, components: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(cls.__init__).parameters
    out = {}
    for name, param in params.items():
        if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        if name in components:
            out[name] = components[name]
        elif param.default is inspect.Parameter.empty:
            out[name] = None
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
