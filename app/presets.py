"""Presets: JSON files in presets/ with per-variant defaults and prompt styles, like Fooocus's presets.

    {
      "name": "Balanced",
      "description": "...",
      "defaults": {"steps": 20},                      # applied to every model
      "variants": {"flux-dev": {"steps": 24, "guidance": 3.5}},   # per model variant, over "defaults"
      "styles": [{"name": "Cinematic", "prompt": "cinematic still of {prompt}", "negative_prompt": "..."}],
      "speed": {"first_block_cache": 0.08}            # speed tactics for the preset's jobs
    }

A file that does not validate is skipped with an error that names the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.catalog.entry import VARIANTS

_ALL_VARIANTS = {v for vs in VARIANTS.values() for v in vs}


class PresetDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int | None = Field(None, ge=1, le=150)
    cfg_scale: float | None = Field(None, ge=0, le=30)
    guidance: float | None = Field(None, ge=0, le=30)
    width: int | None = Field(None, ge=64, le=4096, multiple_of=16)
    height: int | None = Field(None, ge=64, le=4096, multiple_of=16)
    negative_prompt: str | None = None
    sampler: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Style(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    prompt: str = "{prompt}"
    negative_prompt: str = ""

    @field_validator("prompt")
    @classmethod
    def _has_placeholder(cls, v: str) -> str:
        if "{prompt}" not in v:
            raise ValueError("must contain {prompt}, where the user's prompt goes")
        return v

    def apply(self, prompt: str, negative_prompt: str) -> tuple[str, str]:
        styled = self.prompt.replace("{prompt}", prompt).strip(" ,")
        negative = ", ".join(p for p in (negative_prompt.strip(), self.negative_prompt.strip()) if p)
        return styled, negative


class SpeedTactics(BaseModel):
    """The per-job speed tactics a preset turns on (the safe ones: nothing that recompiles or reloads)."""

    model_config = ConfigDict(extra="forbid")

    first_block_cache: float | None = Field(None, ge=0, le=1)


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    model: str | None = None
    defaults: PresetDefaults = PresetDefaults()
    variants: dict[str, PresetDefaults] = {}
    styles: list[Style] = []
    speed: SpeedTactics = SpeedTactics()

    @field_validator("variants")
    @classmethod
    def _known_variants(cls, v: dict[str, PresetDefaults]) -> dict[str, PresetDefaults]:
        unknown = sorted(set(v) - _ALL_VARIANTS)
        if unknown:
            raise ValueError(f"unknown variant {unknown[0]!r} (known: {', '.join(sorted(_ALL_VARIANTS))})")
        return v

    def defaults_for(self, variant: str | None) -> dict[str, Any]:
        merged = self.defaults.as_dict()
        if variant in self.variants:
            merged.update(self.variants[variant].as_dict())
        return merged

    def style(self, name: str | None) -> Style | None:
        return next((s for s in self.styles if s.name == name), None)


def load_preset(path: Path) -> Preset:
    """One preset file; ValueError naming the file and the bad field."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{Path(path).name}: not readable JSON ({exc})") from None
    try:
        return Preset.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ValueError(f"{Path(path).name}: {where}: {err['msg']}") from None


def load_presets(folder: Path) -> tuple[dict[str, Preset], list[str]]:
    """All valid presets by name (files sorted), and one error line per invalid file."""
    presets: dict[str, Preset] = {}
    errors: list[str] = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            preset = load_preset(path)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        presets[preset.name] = preset
    return presets, errors
