"""Find each model part's tensors in the single files of a model, without reading any weights.

A part (transformer, clip_l, clip_g, t5xxl, vae) lives either in a file of its own or under a
prefix inside an all-in-one checkpoint (ComfyUI/Stability layout). Files are only ever read with
safetensors: a pickled .ckpt is refused, never unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from app.catalog.layout import MODELS, TEXT_ENCODERS, VAE, folder_for
from app.errors import MissingModelFiles, UnreadableModel

# Prefixes under which an all-in-one checkpoint stores each part. A part file may also carry its
# part's prefix (ComfyUI saves a lone FLUX transformer under "model.diffusion_model.").
EMBEDDED_PREFIXES: tuple[tuple[str, str], ...] = (
    ("transformer", "model.diffusion_model."),
    ("clip_l", "text_encoders.clip_l.transformer."),
    ("clip_g", "text_encoders.clip_g.transformer."),
    ("t5xxl", "text_encoders.t5xxl.transformer."),
    ("vae", "first_stage_model."),
    ("vae", "vae."),
)


@dataclass(frozen=True)
class PartHelp:
    """How to tell a user where a missing part goes: its name, folder role, and a file to fetch."""

    label: str
    role: str
    example: str


PART_HELP: dict[str, PartHelp] = {
    "checkpoint": PartHelp("checkpoint", MODELS, "the checkpoint .safetensors"),
    "transformer": PartHelp("diffusion model", MODELS, "the model .safetensors"),
    "clip_l": PartHelp("CLIP-L text encoder", TEXT_ENCODERS, "clip_l.safetensors"),
    "clip_g": PartHelp("CLIP-G text encoder", TEXT_ENCODERS, "clip_g.safetensors"),
    "t5xxl": PartHelp("T5-XXL text encoder", TEXT_ENCODERS, "t5xxl_fp16.safetensors"),
    "vae": PartHelp("VAE", VAE, "a 16-channel VAE .safetensors"),
}
VAE_EXAMPLES = {
    "flux": "ae.safetensors (the FLUX.1 VAE)",
    "sd3": "sd3.5_vae.safetensors (the vae of stabilityai/stable-diffusion-3.5-large)",
}


@dataclass(frozen=True)
class TensorSource:
    """Where one part's tensors are: a whole file, or the keys under `prefix` in a larger file."""

    path: Path
    prefix: str
    keys: tuple[str, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)

    def local_keys(self) -> list[str]:
        return [k[len(self.prefix) :] for k in self.keys]

    def load(self) -> dict[str, torch.Tensor]:
        """Read this part's tensors (only these: the rest of an all-in-one file stays on disk); ComfyUI's
        scaled fp8 weights come back unscaled (`unscale_fp8`)."""
        try:
            with safe_open(str(self.path), framework="pt", device="cpu") as handle:
                tensors = {key[len(self.prefix) :]: handle.get_tensor(key) for key in self.keys}
        except (SafetensorError, OSError) as err:
            raise UnreadableModel(f"{self.path}: cannot read the weights ({err}).") from err
        return unscale_fp8(tensors) if is_scaled_fp8(list(tensors)) else tensors


@dataclass(frozen=True)
class FileIndex:
    """The header of one .safetensors file: its keys grouped by embedded part prefix."""

    path: Path
    embedded: Mapping[str, TensorSource]
    unprefixed: TensorSource | None


def index_file(path: Path) -> FileIndex:
    """Read only the header of `path` and group its keys by the part prefixes they carry."""
    if not path.is_file():
        raise FileNotFoundError(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            keys = list(handle.keys())
            metadata = dict(handle.metadata() or {})
    except (SafetensorError, OSError) as err:
        raise UnreadableModel(
            f"{path}: not a readable .safetensors file ({err}). The file may be truncated (an "
            "interrupted download) or in another format; Easel loads .safetensors files only."
        ) from err
    grouped: dict[str, list[str]] = {}
    prefix_of: dict[str, str] = {}
    rest: list[str] = []
    for key in keys:
        for part, prefix in EMBEDDED_PREFIXES:
            if key.startswith(prefix) and prefix_of.get(part, prefix) == prefix:
                grouped.setdefault(part, []).append(key)
                prefix_of[part] = prefix
                break
        else:
            rest.append(key)
    embedded = {
        part: TensorSource(path, prefix_of[part], tuple(part_keys), metadata) for part, part_keys in grouped.items()
    }
    unprefixed = TensorSource(path, "", tuple(rest), metadata) if rest else None
    return FileIndex(path, embedded, unprefixed)


# Key prefixes telling what a file holds, tried in order (SD3 before FLUX: both have transformer_blocks.).
_CONTENT_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sd3", ("joint_blocks.", "pos_embed.proj.")),
    ("flux", ("double_blocks.", "single_blocks.", "single_transformer_blocks.")),
    ("vae", ("encoder.down.", "encoder.down_blocks.", "decoder.up.", "decoder.up_blocks.")),
    ("clip", ("text_model.", "embeddings.token_embedding.")),
    ("t5", ("encoder.block.",)),
)
CONTENT_NAMES = {
    "sd3": "an SD3 transformer",
    "flux": "a FLUX transformer",
    "vae": "a VAE",
    "clip": "a CLIP text encoder",
    "t5": "a T5 text encoder",
}


def describe_contents(keys: list[str]) -> str | None:
    """What the keys look like: a CONTENT_NAMES key ("vae", "sd3", ...), or None when unrecognised."""
    for kind, prefixes in _CONTENT_MARKERS:
        if any(k.startswith(prefixes) for k in keys):
            return kind
    return None


def is_scaled_fp8(keys: list[str]) -> bool:
    """ComfyUI's "*_scaled" fp8 files: a "scaled_fp8" marker and a ".scale_weight" per layer."""
    return any(k == "scaled_fp8" or k.endswith(".scale_weight") for k in keys)


SCALE_KEYS = (".scale_weight", ".scale_input")


def unscale_fp8(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ComfyUI's scaled fp8 tensors as plain ones: each layer's fp8 weight times its `scale_weight` (a scalar,
    or one per output row), in float32 for the loader to cast; the marker and scale tensors are dropped.
    ComfyUI computes with `weight.to(dtype) * scale_weight` the same way."""
    out = {k: v for k, v in tensors.items() if k != "scaled_fp8" and not k.endswith(SCALE_KEYS)}
    for key, scale in tensors.items():
        if not key.endswith(".scale_weight"):
            continue
        weight_key = key[: -len(".scale_weight")] + ".weight"
        if weight_key not in out:
            raise UnreadableModel(f"scaled fp8: {key} has no {weight_key} to scale")
        weight = out[weight_key].to(torch.float32)
        scale = scale.to(torch.float32)
        if scale.numel() > 1:  # one scale per output row
            scale = scale.reshape(-1, *([1] * (weight.ndim - 1)))
        out[weight_key] = weight * scale
    return out


def _missing_file(part: str, path: Path, models_root: Path) -> MissingModelFiles:
    help_ = PART_HELP.get(part, PartHelp(part, MODELS, path.name))
    return MissingModelFiles(
        f"The {help_.label} file {path} is missing: put {path.name} back there, or put "
        f"{help_.example} in {folder_for(models_root, help_.role)}/."
    )


def index_entry_files(parts: Mapping[str, Path], models_root: Path) -> dict[str, FileIndex]:
    """Index every file named in a ModelEntry's parts ("folder" entries are not single files)."""
    indexes: dict[str, FileIndex] = {}
    for role, path in parts.items():
        if role == "folder":
            continue
        try:
            indexes[role] = index_file(Path(path))
        except FileNotFoundError:
            raise _missing_file(role, Path(path), models_root) from None
    return indexes


def find_part(part: str, indexes: Mapping[str, FileIndex]) -> TensorSource | None:
    """Where `part` comes from: its own file first, then an all-in-one checkpoint, then any file.

    A part's own file wins over a copy embedded in the checkpoint, so a VAE or text encoder chosen
    on its own overrides the one baked into a checkpoint.
    """
    own = indexes.get(part)
    if own is not None:
        if part in own.embedded:
            return own.embedded[part]
        if own.unprefixed is not None:
            return own.unprefixed
    for role in ("checkpoint", *indexes):
        index = indexes.get(role)
        if index is not None and part in index.embedded:
            return index.embedded[part]
    return None


def missing_part_error(
    part: str, family: str, family_title: str, models_root: Path, beside: Path | None
) -> MissingModelFiles:
    help_ = PART_HELP[part]
    example = VAE_EXAMPLES.get(family, help_.example) if part == "vae" else help_.example
    found_in = f" (none was paired with {beside.name} and it has none inside)" if beside is not None else ""
    return MissingModelFiles(
        f"{family_title} needs a {help_.label}{found_in}: put {example} in {folder_for(models_root, help_.role)}/."
    )
