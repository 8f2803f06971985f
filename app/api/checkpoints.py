"""Find a model by the names A1111 clients use for it: its title, its name, or A1111's own forms
("name.safetensors [0123456789]", "Stable-diffusion/name.safetensors")."""

from __future__ import annotations

import re

from app.catalog.entry import ModelEntry
from app.errors import ModelNotFound

_HASH_SUFFIX = re.compile(r"\s*\[[0-9a-fA-F]{8,64}\]$")
_SUFFIXES = (".safetensors", ".sft")


def find_checkpoint(engine, title: str) -> ModelEntry:
    """The catalog entry `title` names; ModelNotFound listing the available models otherwise."""
    scan = engine.catalog()
    try:
        return scan.by_name(title)
    except ModelNotFound as not_found:
        for alternative in _alternatives(title):
            try:
                return scan.by_name(alternative)
            except ModelNotFound:
                continue
        raise not_found


def _alternatives(title: str) -> list[str]:
    out = []
    name = _HASH_SUFFIX.sub("", title.strip())
    out.append(name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    out.append(name)
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            out.append(name[: -len(suffix)])
    return [n for n in dict.fromkeys(out) if n and n != title]
