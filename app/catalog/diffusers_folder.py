"""Check a diffusers folder (model_index.json + one subfolder per component) without loading it.

A folder is READY only when diffusers could load it offline: every component named in
model_index.json has its folder and config, models have .safetensors weights whose headers are
sound (and every shard an index names), and tokenizers have their vocabulary files, and loading
runs no code that came with the folder (custom_code.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from app.catalog.custom_code import custom_code_problem
from app.catalog.entry import CUSTOM_CODE, MISSING, READY, UNREADABLE, VARIANTS, ModelEntry
from app.catalog.identify import FILL_IN_CHANNELS
from app.catalog.safetensors_header import UnreadableFile, read_header

FLUX_PIPELINES = ("FluxPipeline", "FluxImg2ImgPipeline", "FluxInpaintPipeline", "FluxFillPipeline")
SD3_PIPELINES = ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline", "StableDiffusion3InpaintPipeline")
PICKLED_WEIGHTS = "pickled weights, convert to safetensors"
# File names diffusers loads when no variant is asked for.
CANONICAL_WEIGHTS = ("diffusion_pytorch_model.safetensors", "model.safetensors")
# Tells the family of a folder whose pipeline class is custom code.
TRANSFORMER_FAMILIES = {"FluxTransformer2DModel": "flux", "SD3Transformer2DModel": "sd3"}


@dataclass
class _Findings:
    missing: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    size: int = 0


def pipeline_family(class_name: str) -> str | None:
    if class_name.startswith(FLUX_PIPELINES[0]) or class_name in FLUX_PIPELINES:
        return "flux"
    if class_name.startswith(SD3_PIPELINES[0]) or class_name in SD3_PIPELINES:
        return "sd3"
    return None


def inspect_diffusers_folder(folder: Path, name: str) -> ModelEntry:
    """Describe the diffusers folder `folder`, shown as `name` unless its easel.json names it.

    easel.json (written beside model_index.json, e.g. by the demo builder) may set "name",
    "label", "demo" and "variant"; a variant not of the folder's family is ignored."""
    marker = _read_json(folder / "easel.json")
    marker = marker if isinstance(marker, dict) else {}
    name = str(marker.get("name") or name)
    demo = bool(marker.get("demo", False))
    labels = [str(marker["label"])] if marker.get("label") else (["demo"] if demo else [])

    def entry(family: str | None, variant: str | None, status: str, problems: list[str], size: int = 0) -> ModelEntry:
        return ModelEntry(
            name=name, family=family, variant=variant, format="diffusers", path=folder,
            size_bytes=size, status=status, problems=tuple(problems), parts={"folder": folder},
            key_layout=None, demo=demo, label=", ".join(labels),
        )

    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        if not isinstance(index, dict):
            raise ValueError("not a JSON object")
    except json.JSONDecodeError as e:
        return entry(None, None, UNREADABLE, [f"{folder / 'model_index.json'}: invalid JSON at line {e.lineno}"])
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return entry(None, None, UNREADABLE, [f"{folder / 'model_index.json'}: cannot read ({e})"])

    class_name = str(index.get("_class_name", ""))
    custom = custom_code_problem(folder, index)
    custom_pipeline = isinstance(index.get("_class_name"), list)
    family = _family_of(index) if custom_pipeline else pipeline_family(class_name)
    if family is None and custom_pipeline:
        return entry(None, None, CUSTOM_CODE, [custom])
    if family is None:
        return entry(None, None, UNREADABLE,
                     [f"{class_name or 'an unnamed pipeline'} is not a FLUX.1 or SD3.5 text-to-image pipeline"])

    findings = _Findings()
    try:
        for component, spec in index.items():
            if component.startswith("_") or not _is_present(spec):
                continue
            _check_component(folder, component, str(spec[1]), findings)
    except OSError as e:  # e.g. a subfolder without read permission
        findings.unreadable.append(f"cannot read {e.filename or folder}: {e.strerror or e}")
    if family == "sd3" and not _is_present(index.get("text_encoder_3")):
        labels.append("no T5")

    variant = _variant(family, folder, name)
    if marker.get("variant") in VARIANTS[family]:  # the builder of the folder knows best
        variant = str(marker["variant"])
    problems = ([custom] if custom else []) + findings.unreadable + findings.missing
    status = CUSTOM_CODE if custom else UNREADABLE if findings.unreadable else MISSING if findings.missing else READY
    return entry(family, variant, status, problems, findings.size)


def _family_of(index: dict) -> str | None:
    """The family of a custom pipeline, told by its transformer when that is a diffusers class."""
    transformer = index.get("transformer")
    return TRANSFORMER_FAMILIES.get(str(transformer[1])) if _is_present(transformer) else None


def _is_present(spec: object) -> bool:
    """model_index.json writes [null, null] for an optional component that is absent."""
    return isinstance(spec, list) and len(spec) == 2 and bool(spec[0]) and bool(spec[1])


def _check_component(folder: Path, component: str, class_name: str, found: _Findings) -> None:
    d = folder / component
    if not d.is_dir():
        found.missing.append(f"missing {d}/ ({class_name})")
        return
    if "Tokenizer" in class_name:
        _need_one_of(d, _tokenizer_files(class_name), found)
    elif "Scheduler" in class_name:
        _need_one_of(d, [("scheduler_config.json",)], found)
    elif "Processor" in class_name or "FeatureExtractor" in class_name:
        _need_one_of(d, [("preprocessor_config.json",)], found)
    else:
        _need_one_of(d, [("config.json",)], found)
        _check_weights(d, folder, found)


def _tokenizer_files(class_name: str) -> list[tuple[str, ...]]:
    """Sets of files a tokenizer loads from, most usual first; any one complete set is enough.

    transformers 5 saves CLIP and T5 tokenizers as tokenizer.json alone and loads them from it."""
    if class_name.startswith("CLIPTokenizer"):
        return [("vocab.json", "merges.txt"), ("tokenizer.json",)]
    if class_name.startswith("T5Tokenizer"):
        return [("spiece.model",), ("tokenizer.json",)]
    return [("tokenizer.json",), ("tokenizer_config.json",), ("vocab.json",)]


def _need_one_of(d: Path, file_sets: list[tuple[str, ...]], found: _Findings) -> None:
    """Report the missing files of the first set unless some set is complete."""
    if any(all((d / n).is_file() for n in names) for names in file_sets):
        return
    others = " or ".join("+".join(names) for names in file_sets[1:])
    for n in file_sets[0]:
        if not (d / n).is_file():
            found.missing.append(f"missing {d / n}" + (f" (or {others})" if others else ""))


def _check_weights(d: Path, folder: Path, found: _Findings) -> None:
    indexes = sorted(d.glob("*.safetensors.index.json"))
    canonical_index = [p for p in indexes if p.name[: -len(".index.json")] in CANONICAL_WEIGHTS]
    if indexes:
        index = (canonical_index or indexes)[0]
        shards = _shards(index, found, folder)
        files = [d / s for s in shards]
    else:
        canonical = [d / n for n in CANONICAL_WEIGHTS if (d / n).exists()]
        files = canonical or sorted(d.glob("*.safetensors"))
    if not files and not indexes:
        if any(d.glob("*.bin")):
            found.unreadable.append(f"{d.relative_to(folder)}: {PICKLED_WEIGHTS}")
        else:
            found.missing.append(f"missing {d / _weights_name(d)}")
        return
    for f in files:
        if not f.is_file():
            found.missing.append(f"missing {f}")
            continue
        try:
            read_header(f)
        except UnreadableFile as e:
            found.unreadable.append(f"{f.relative_to(folder)}: {e.reason}")
            continue
        found.size += f.stat().st_size


def _shards(index: Path, found: _Findings, folder: Path) -> list[str]:
    data = _read_json(index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict):
        found.unreadable.append(f"{index.relative_to(folder)}: not a valid weights index")
        return []
    return sorted({str(v) for v in weight_map.values()})


def _weights_name(d: Path) -> str:
    """diffusers models name their weights diffusion_pytorch_model.*, transformers models model.*."""
    config = _read_json(d / "config.json")
    if isinstance(config, dict):
        from_diffusers = "_diffusers_version" in config
    else:
        from_diffusers = not d.name.startswith("text_encoder")
    return CANONICAL_WEIGHTS[0] if from_diffusers else CANONICAL_WEIGHTS[1]


def _variant(family: str, folder: Path, name: str) -> str | None:
    config = _read_json(folder / "transformer" / "config.json")
    if not isinstance(config, dict):
        return None
    if family == "flux":
        if config.get("in_channels") == FILL_IN_CHANNELS:  # FLUX.1 Fill: picture and mask beside the latents
            return "flux-fill"
        return "flux-dev" if config.get("guidance_embeds") else "flux-schnell"
    if config.get("dual_attention_layers"):
        return "sd3.5-medium"
    # Large and large-turbo share one config; only the name tells them apart.
    return "sd3.5-large-turbo" if "turbo" in f"{name} {folder.name}".lower() else "sd3.5-large"


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
