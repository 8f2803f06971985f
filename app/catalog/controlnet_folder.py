"""A diffusers-format ControlNet folder (config.json + diffusion_pytorch_model weights) as one catalog file."""

from __future__ import annotations

from pathlib import Path

from app.catalog.files import FoundFile, main_dtype
from app.catalog.layout import CONTROLNET
from app.catalog.safetensors_header import UnreadableFile, read_header
from app.controlnet.folder import CONTROL_TRANSFORMER_CLASS, MODEL_CLASSES, WEIGHTS_STEM, read_config, weight_files, \
    weights_folder
from app.controlnet.layouts import control_types, controlnet_layout

PICKLED = "pickled weights (diffusion_pytorch_model.bin): Easel loads only .safetensors; convert them"


def inspect_controlnet_folder(folder: Path, root: Path) -> FoundFile:
    """The folder as a FoundFile of kind "controlnet", named by the folder; the reason when unusable. Never raises.
    A FLUX.1 Canny/Depth dev pipeline folder is one too: its transformer/ is read."""
    def unusable(reason: str, size: int = 0) -> FoundFile:
        return FoundFile(folder, "unknown", size, CONTROLNET, root, reason=reason)

    weights = weights_folder(folder)
    try:
        class_name = str(read_config(weights).get("_class_name", ""))
        files = weight_files(weights)
    except UnreadableFile as e:
        return unusable(f"{e.path.name if e.path else 'config.json'}: {e.reason}")
    if class_name not in (*MODEL_CLASSES, CONTROL_TRANSFORMER_CLASS):
        return unusable(f"a diffusers {class_name or 'unnamed'} folder, not a FLUX.1 or SD3.5 ControlNet")
    if not files:
        has_bin = any(p.name.startswith(WEIGHTS_STEM) and p.suffix == ".bin" for p in _entries(weights))
        return unusable(PICKLED if has_bin else "no diffusion_pytorch_model.safetensors beside config.json")
    tensors: dict = {}
    size = 0
    for file in files:
        try:
            tensors.update(read_header(file).tensors)
            size += file.stat().st_size
        except UnreadableFile as e:
            return unusable(f"{file.name}: {e.reason}", size)
        except OSError as e:
            return unusable(f"{file.name}: cannot read ({e.strerror or e})", size)
    layout = controlnet_layout(tensors)
    expected = layout.model_class or CONTROL_TRANSFORMER_CLASS if layout is not None else None
    if layout is None or expected != class_name:
        return unusable(f"config.json names {class_name}, but the weights are not one", size)
    return FoundFile(folder, "controlnet", size, CONTROLNET, root, layout.family, layout.flavour, "diffusers",
                     dtype=main_dtype(tensors), control_types=control_types(layout, folder.name))


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []
