"""Load a ControlNet file or diffusers folder into its diffusers class, on the CPU, every weight checked.

The config comes from the file's `__metadata__["config"]` (a diffusers config dict as JSON, how Easel
saves its own), else the folder's config.json, else it is read from the tensor shapes (config.py). The
model is built with empty weights and takes the file's tensors as they are (no random init, no copy).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.catalog.safetensors_header import read_header
from app.controlnet.folder import CONFIG, read_config, weight_files, weights_folder
from app.controlnet.layouts import ControlNetLayout, controlnet_layout, key_naming
from app.errors import UnreadableModel

METADATA_CONFIG = "config"
MAX_NAMED_KEYS = 5


def load_controlnet(path: Path, dtype) -> Any:
    """The diffusers FluxControlNetModel / SD3ControlNetModel in `path` with all weights in `dtype` on the CPU.

    UnreadableModel, with the reason, for a file that is not a ControlNet, one Easel loads otherwise
    (FLUX.1 Canny/Depth), a corrupt file, or weights that do not match the config (naming the keys)."""
    path = Path(path)
    files = _files(path)
    tensors: dict = {}
    metadata: dict[str, str] = {}
    for file in files:
        header = read_header(file)
        tensors.update(header.tensors)
        metadata = metadata or header.metadata
    layout = controlnet_layout(tensors)
    if layout is None:
        raise UnreadableModel(f"{path}: not a ControlNet (FLUX.1 InstantX / XLabs / union, or SD3.5)")
    if not layout.model_class:
        what = "LoRA" if layout.flavour == "bfl-control-lora" else "model"
        raise UnreadableModel(f"{path}: a FLUX.1 Canny/Depth {what} by BFL, not a ControlNet model: its unit "
                              "runs it with FluxControlPipeline")
    try:
        state = _to_diffusers(key_naming(tensors), _read_tensors(files))
        config = _config(path, layout, {k: tuple(v.shape) for k, v in state.items()}, metadata)
    except ValueError as e:
        raise UnreadableModel(f"{path}: {e}") from e
    return _build(path, layout.model_class, config, state, dtype)


def _files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    files = weight_files(weights_folder(path))
    if not files:
        raise UnreadableModel(f"{path}: no diffusion_pytorch_model.safetensors in the folder")
    return files


def _read_tensors(files: list[Path]) -> dict:
    from safetensors import SafetensorError, safe_open

    state: dict = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt", device="cpu") as f:
                state.update({k: f.get_tensor(k) for k in f.keys()})
        except (SafetensorError, OSError) as e:
            raise UnreadableModel(f"{file}: cannot read its tensors ({e})") from e
    return state


def _to_diffusers(naming: str | None, state: dict) -> dict:
    from app.controlnet.convert import to_diffusers

    return to_diffusers(naming or "diffusers", state)


def _config(path: Path, layout: ControlNetLayout, shapes: Mapping[str, tuple[int, ...]],
            metadata: Mapping[str, str]) -> dict[str, Any]:
    """The file's own config, else the folder's config.json, else one read from the shapes."""
    if METADATA_CONFIG in metadata:
        try:
            config = json.loads(metadata[METADATA_CONFIG])
        except json.JSONDecodeError as e:
            raise ValueError(f"its metadata {METADATA_CONFIG!r} is not JSON ({e.msg})") from e
        where = f"its metadata {METADATA_CONFIG!r}"
    elif path.is_dir() and (path / CONFIG).is_file():
        config, where = read_config(path), CONFIG
    else:
        from app.controlnet.config import infer_config

        return {"_class_name": layout.model_class, **infer_config(layout.family, shapes, metadata)}
    if not isinstance(config, dict):
        raise ValueError(f"{where} is not a JSON object")
    named = config.get("_class_name", layout.model_class)
    if named != layout.model_class:
        raise ValueError(f"{where} names {named}, but the weights are a {layout.model_class}")
    return config


def _build(path: Path, class_name: str, config: dict[str, Any], state: dict, dtype) -> Any:
    import diffusers
    from accelerate import init_empty_weights

    try:
        with init_empty_weights():
            model = getattr(diffusers, class_name).from_config(config)
    except (TypeError, ValueError, ZeroDivisionError) as e:
        raise UnreadableModel(f"{path}: its config does not build a {class_name} ({e})") from e
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise UnreadableModel(f"{path}: its tensors do not match a {class_name} of its config: "
                              + "; ".join(_named(what, keys) for what, keys in
                                          (("missing", missing), ("unexpected", unexpected)) if keys))
    cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(cast, strict=True, assign=True)
    except RuntimeError as e:
        raise UnreadableModel(f"{path}: tensor shapes do not match its config: {e}") from e
    # Buffers the model computes itself (SD3's position grid) follow too. nn.Module.to, as ModelMixin.to
    # warns about fp32-kept modules these classes do not have.
    import torch

    return torch.nn.Module.to(model, dtype)


def _named(what: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_NAMED_KEYS])
    more = f" and {len(keys) - MAX_NAMED_KEYS} more" if len(keys) > MAX_NAMED_KEYS else ""
    return f"{what} {shown}{more}"
