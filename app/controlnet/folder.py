"""A diffusers-format ControlNet folder: config.json beside diffusion_pytorch_model weights, one model.

BFL's FLUX.1 Canny/Depth dev in diffusers format is a whole FluxControlPipeline folder (model_index.json);
its ControlNet-like part, the 128-channel transformer, is the `transformer/` model in it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from app.catalog.safetensors_header import UnreadableFile

CONFIG = "config.json"
WEIGHTS_STEM = "diffusion_pytorch_model"
SINGLE_WEIGHTS = "diffusion_pytorch_model.safetensors"
WEIGHTS_INDEX = "diffusion_pytorch_model.safetensors.index.json"
MODEL_CLASSES = ("FluxControlNetModel", "SD3ControlNetModel")
CONTROL_TRANSFORMER_CLASS = "FluxTransformer2DModel"  # FLUX.1 Canny/Depth dev's, in a pipeline folder or alone
FLUX_CONTROL_PIPELINES = ("FluxControlPipeline", "FluxControlImg2ImgPipeline", "FluxControlInpaintPipeline")
PIPELINE_INDEX = "model_index.json"


def is_flux_control_pipeline(folder: Path) -> bool:
    """A diffusers pipeline folder of FLUX.1 Canny/Depth dev (model_index.json names FluxControlPipeline)."""
    try:
        return _read_json(folder / PIPELINE_INDEX).get("_class_name") in FLUX_CONTROL_PIPELINES
    except UnreadableFile:
        return False


def weights_folder(path: Path) -> Path:
    """Where a ControlNet folder's config.json and weights are: itself, or a FLUX.1 control pipeline's transformer/."""
    return path / "transformer" if (path / PIPELINE_INDEX).is_file() else path


def is_model_folder(names: Iterable[str]) -> bool:
    """A folder whose entries are `names` holds one diffusers model (config.json and its weights)."""
    names = set(names)
    return CONFIG in names and any(n.startswith(WEIGHTS_STEM) for n in names)


def weight_files(folder: Path) -> list[Path]:
    """The .safetensors files of the folder's weights: the single file, or the shards its index names;
    [] when it has neither. UnreadableFile when the index is bad."""
    single = folder / SINGLE_WEIGHTS
    if single.is_file():
        return [single]
    index = folder / WEIGHTS_INDEX
    if not index.is_file():
        return []
    weight_map = _read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise UnreadableFile("the index names no weight files (weight_map)", index)
    names = sorted({str(n) for n in weight_map.values()})
    bad = [n for n in names if Path(n).name != n]
    if bad:
        raise UnreadableFile(f"the index names a file outside the folder: {bad[0]!r}", index)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise UnreadableFile(f"shard {missing[0]} named by the index is missing", index)
    return [folder / n for n in names]


def read_config(folder: Path) -> dict:
    """The folder's config.json; UnreadableFile when it cannot be read or is not a JSON object."""
    return _read_json(folder / CONFIG)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UnreadableFile(f"invalid JSON at line {e.lineno} ({e.msg})", path) from e
    except (OSError, UnicodeDecodeError) as e:
        raise UnreadableFile(f"cannot read: {getattr(e, 'strerror', None) or e}", path) from e
    if not isinstance(data, dict):
        raise UnreadableFile("not a JSON object", path)
    return data
