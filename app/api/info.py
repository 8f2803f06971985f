"""The `info` JSON text of a txt2img / img2img response, with the keys A1111 clients read."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from app import __version__
from app.engine.jobs import GenerationResult
from app.generation.infotext import parse_infotext
from app.generation.request import GenerationRequest


def build_info(
    result: GenerationResult,
    request: GenerationRequest,
    *,
    created: float,
    ignored_fields: list[str],
    notes: list[str],
) -> dict[str, Any]:
    count = len(result.images)
    params = parse_infotext(result.infotexts[0]).params if result.infotexts else {}
    width, height = _size(params.get("Size"), request)
    negative = request.negative_prompt
    return {
        "prompt": request.prompt,
        "all_prompts": [request.prompt] * count,
        "negative_prompt": negative,
        "all_negative_prompts": [negative] * count,
        "seed": result.seeds[0] if result.seeds else request.seed,
        "all_seeds": list(result.seeds),
        "subseed": -1,
        "all_subseeds": [-1] * count,
        "subseed_strength": 0,
        "width": width,
        "height": height,
        "sampler_name": params.get("Sampler", "Euler"),
        "scheduler": params.get("Schedule type", "Simple"),
        "cfg_scale": _number(params.get("CFG scale"), request.cfg_scale),
        "distilled_cfg_scale": _number(params.get("Distilled CFG Scale"), request.guidance),
        "steps": _number(params.get("Steps requested", params.get("Steps")), request.steps),  # A1111: the asked count
        "batch_size": request.batch_size,
        "n_iter": request.batch_count,
        "denoising_strength": request.strength if request.task != "txt2img" else None,
        "sd_model_name": result.model or request.model,
        "sd_model_hash": params.get("Model hash"),
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "styles": [],
        "index_of_first_image": 0,
        "infotexts": list(result.infotexts),
        "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(created)),
        "clip_skip": 1,
        "clip_tokens_dropped": result.clip_tokens_dropped,
        "interrupted": result.interrupted,
        "warnings": [*result.warnings, *notes],
        "ignored_fields": list(ignored_fields),
        "version": f"easel {__version__}",
    }


def info_text(info: dict[str, Any]) -> str:
    return json.dumps(json_safe(info), ensure_ascii=False)


MAX_ECHO_DEPTH = 32


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` with NaN and infinities (valid in Python, not in JSON) replaced by None, anything that is
    not a JSON type turned into text, and nesting deeper than MAX_ECHO_DEPTH cut, so echoing what a
    client sent can never fail."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if depth >= MAX_ECHO_DEPTH:
        return "..."
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, depth + 1) for v in value]
    return str(value)


def _size(text: str | None, request: GenerationRequest) -> tuple[int | None, int | None]:
    if text and "x" in text:
        w, _, h = text.partition("x")
        if w.isdigit() and h.isdigit():
            return int(w), int(h)
    return request.width, request.height


def _number(text: str | None, fallback: float | int | None) -> float | int | None:
    if text is None:
        return fallback
    try:
        value = float(text)
    except ValueError:
        return fallback
    return int(value) if value.is_integer() else value
