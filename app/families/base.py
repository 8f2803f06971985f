"""What a model family tells the engine: defaults per variant, pipeline classes per task, call arguments."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class VariantDefaults:
    """Settings a variant is meant to run with (its model card's), used where the request says None."""

    steps: int
    cfg_scale: float  # true classifier-free guidance; <= 1 means off
    guidance: float | None  # distilled guidance (FLUX dev); None where the model has none
    max_sequence_length: int  # T5 tokens; must match what the model was trained with
    width: int = 1024
    height: int = 1024
    negative_prompt: bool = False  # whether a negative prompt has any effect at the default CFG
    sampler: str = "Euler"
    schedule_type: str = "Simple"


@dataclass(frozen=True)
class FamilyAdapter:
    """One model family. Each family module builds one of these; the engine reads only this."""

    name: str  # "flux" | "sd3"
    display: str  # "FLUX.1" | "SD3.5"
    pipelines: Mapping[str, str]  # task -> diffusers pipeline class name
    variants: Mapping[str, VariantDefaults]
    clip_tokenizer: str  # pipeline attribute of the CLIP tokenizer whose 77-token window is reported
    t5_encoder: str  # pipeline attribute of the T5 encoder (kept on the CPU by small-VRAM plans)
    call_kwargs: Callable[[Any, VariantDefaults], dict[str, Any]]  # (request, defaults) -> pipeline kwargs
    size_multiple: int = 16

    def pipeline_class(self, task: str):
        import diffusers

        try:
            return getattr(diffusers, self.pipelines[task])
        except KeyError:
            raise ValueError(f"{self.display} has no {task!r} pipeline (has: {', '.join(self.pipelines)})") from None

    def defaults_for(self, variant: str | None, model_path: Path | None = None) -> VariantDefaults:
        """The variant's defaults, refined by an `easel.json` beside a diffusers folder (demo models use it)."""
        base = self.variants.get(variant or "", next(iter(self.variants.values())))
        meta = read_folder_meta(model_path)
        overrides = {k: v for k, v in (meta.get("defaults") or {}).items() if k in VariantDefaults.__dataclass_fields__}
        if "max_sequence_length" in meta:
            overrides["max_sequence_length"] = int(meta["max_sequence_length"])
        return replace(base, **overrides) if overrides else base


def read_folder_meta(model_path: Path | None) -> dict[str, Any]:
    if model_path is None or not Path(model_path).is_dir():
        return {}
    meta_file = Path(model_path) / "easel.json"
    try:
        data = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def common_call_kwargs(request: Any, defaults: VariantDefaults) -> dict[str, Any]:
    """Arguments every family's pipelines take the same way."""
    kwargs: dict[str, Any] = {
        "prompt": request.prompt,
        "num_inference_steps": request.steps or defaults.steps,
        "max_sequence_length": defaults.max_sequence_length,
    }
    return kwargs
