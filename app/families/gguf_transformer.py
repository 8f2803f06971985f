"""FLUX.1 / SD3.5 transformers from GGUF files (city96's Q8_0, Q5_K_S, Q4_K_S... quantizations), offline.

The weights stay quantized in memory: diffusers' GGUF quantizer puts GGUFLinear layers in the model,
which dequantize their weight to the compute dtype at each call (so a Q4 FLUX.1 dev holds about 6.8 GB
where bf16 holds 23.8 GB). The config is Easel's shipped one with every width and count read from the
file's tensor table, written to a temporary folder for `from_single_file`, so nothing is fetched.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GGUF_SUFFIX = ".gguf"


@dataclass(frozen=True)
class GgufSource:
    """Where a transformer's GGUF tensors are: the whole file (GGUF files hold one model)."""

    path: Path
    keys: tuple[str, ...]
    prefix: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def local_keys(self) -> list[str]:
        return list(self.keys)

    def load(self) -> dict[str, Any]:
        """The tensors dequantized to float32 (a GGUF T5 runs dequantized; the transformer does not use this)."""
        from app.catalog.gguf_header import dequantized_tensors

        return dequantized_tensors(self.path)


def is_gguf(path: Path) -> bool:
    return Path(path).suffix.lower() == GGUF_SUFFIX


def gguf_source(path: Path) -> GgufSource:
    """The file's tensor names, read from its header (UnreadableFile when it is not a readable GGUF)."""
    from app.catalog.gguf_header import read_gguf_tensors

    return GgufSource(Path(path), tuple(read_gguf_tensors(Path(path))))


def load_gguf_transformer(family: str, variant: str, source: GgufSource, dtype) -> Any:
    """FluxTransformer2DModel / SD3Transformer2DModel with GGUF-quantized linear layers computing in `dtype`."""
    import diffusers

    from app.errors import UnreadableModel

    from diffusers.models.model_loading_utils import load_gguf_checkpoint

    cls = diffusers.FluxTransformer2DModel if family == "flux" else diffusers.SD3Transformer2DModel
    try:
        config = _config(family, variant, source)
        # Easel's own key conversion (row splits keep GGUF's quantized rows intact): diffusers' assumes
        # the released widths
        state = _to_diffusers(family, load_gguf_checkpoint(str(source.path)))
    except (KeyError, ValueError) as e:
        raise UnreadableModel(f"{source.path}: not a {family.upper()} transformer Easel can read ({e})") from None
    with tempfile.TemporaryDirectory(prefix="easel-gguf-config-") as folder:
        (Path(folder) / "config.json").write_text(json.dumps({"_class_name": cls.__name__, **config}))
        try:
            model = cls.from_single_file(state, config=folder, local_files_only=True, torch_dtype=dtype,
                                         quantization_config=diffusers.GGUFQuantizationConfig(compute_dtype=dtype))
        except (ValueError, KeyError, RuntimeError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UnreadableModel(f"{source.path}: the GGUF transformer cannot be loaded: {first}") from None
    return model.eval()


def _config(family: str, variant: str, source: GgufSource) -> dict[str, Any]:
    """The released config with the file's widths and counts, read from shapes alone (meta tensors)."""
    import torch

    from app.catalog.gguf_header import read_gguf_tensors
    from app.families import keys_flux, keys_sd3
    from app.families.single_file import released_config

    with torch.device("meta"):
        tensors = _to_diffusers(family, {k: torch.empty(shape) for k, (_, shape) in read_gguf_tensors(source.path).items()})
    released = released_config(variant, "transformer")
    infer = keys_flux.infer_config if family == "flux" else keys_sd3.infer_config
    config = infer(tensors, released, source.metadata)
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _to_diffusers(family: str, tensors: dict) -> dict:
    """A transformer's tensors (any prefix, original or diffusers names) under diffusers' names."""
    from app.families import keys_flux, keys_sd3

    tensors = {k.removeprefix("model.diffusion_model."): v for k, v in tensors.items()}
    if family == "flux":
        return keys_flux.convert_bfl_to_diffusers(tensors) if keys_flux.is_bfl_layout(list(tensors)) else tensors
    return keys_sd3.convert_original_to_diffusers(tensors) if keys_sd3.is_original_layout(list(tensors)) else tensors
