"""Turn a single-file transformer or checkpoint into a model by pairing it with encoder and VAE files.

FLUX needs CLIP-L, T5-XXL and a 16-channel VAE; SD3.5 needs CLIP-L, CLIP-G and a VAE, and runs
without T5 (labelled "no T5"). An all-in-one checkpoint brings some parts itself; the rest are taken
from the text-encoder and VAE folders of every models root, and from files loose in a root.

Where several files fit, names that say what they are win ("t5xxl_*", "clip_l*", "ae" for FLUX,
"*sd3*" for SD3.5), then 16-bit over 32-bit over fp8 weights, then files from the model's own root.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from app.catalog.entry import MISSING, READY, UNREADABLE, ModelEntry
from app.catalog.files import FoundFile
from app.catalog.layout import TEXT_ENCODERS, VAE, folder_for

REQUIRED = {"flux": ("clip_l", "t5xxl", "vae"), "sd3": ("clip_l", "clip_g", "vae")}
OPTIONAL = {"flux": (), "sd3": ("t5xxl",)}

# part -> (what it is, the file a user would fetch)
_WANTED = {
    "clip_l": ("a CLIP-L text encoder", "clip_l.safetensors"),
    "clip_g": ("a CLIP-G text encoder", "clip_g.safetensors"),
    "t5xxl": ("a T5-XXL text encoder", "t5xxl_fp16.safetensors"),
    ("vae", "flux"): ("the FLUX VAE", "ae.safetensors"),
    ("vae", "sd3"): ("the SD3.5 VAE", "sd3.5_vae.safetensors (the vae of stabilityai/stable-diffusion-3.5-large)"),
}


def single_file_entry(main: FoundFile, name: str, candidates: Sequence[FoundFile]) -> ModelEntry:
    """Build the entry of `main` (a GENERATION_KINDS file) with parts chosen among `candidates`.

    `candidates` are the files of the text-encoder and VAE folders and loose files, usable or not (unusable
    4-channel VAEs are named in the hint when no 16-channel one is there).
    """
    family = main.family or "flux"
    own_key = "checkpoint" if main.kind.endswith("-checkpoint") else "transformer"
    parts: dict[str, Path] = {own_key: main.path}
    size = main.size_bytes
    if main.reason:
        return _entry(main, name, parts, size, UNREADABLE, [f"{main.path.name}: {main.reason}"], "")

    problems: list[str] = []
    no_t5 = False
    for part in REQUIRED[family] + OPTIONAL[family]:
        if part in main.contains:
            continue
        chosen = _best(part, family, main, candidates)
        if chosen is not None:
            parts[part] = chosen.path
            size += chosen.size_bytes
        elif part in REQUIRED[family]:
            problems.append(_missing_message(part, family, main, candidates))
        else:
            no_t5 = True
    status = MISSING if problems else READY
    labels = [_storage_label(main), "no T5" if no_t5 else ""]
    return _entry(main, name, parts, size, status, problems, ", ".join(label for label in labels if label))


FP8_LABELS = {"F8_E4M3": "fp8 e4m3fn", "F8_E5M2": "fp8 e5m2"}


def _storage_label(main: FoundFile) -> str:
    """How the transformer is kept in memory, when not 16-bit: "GGUF Q4_K", "fp8 e4m3fn"."""
    if main.path.suffix.lower() == ".gguf":
        return f"GGUF {main.dtype}"
    return FP8_LABELS.get(main.dtype or "", "")


def _entry(main: FoundFile, name: str, parts: dict[str, Path], size: int, status: str,
           problems: list[str], label: str) -> ModelEntry:
    return ModelEntry(
        name=name, family=main.family, variant=main.variant, format="single-file", path=main.path,
        size_bytes=size, status=status, problems=tuple(problems), parts=parts,
        key_layout=main.key_layout, label=label,
    )


def _best(part: str, family: str, main: FoundFile, candidates: Sequence[FoundFile]) -> FoundFile | None:
    fitting = [c for c in candidates if c.kind == part and c.usable]
    return min(fitting, key=lambda c: _rank(part, family, c, main.root), default=None)


def _rank(part: str, family: str, f: FoundFile, root: Path) -> tuple:
    stem = f.path.stem.lower()
    if part == "vae":
        flux_named = stem == "ae" or "flux" in stem
        sd3_named = "sd3" in stem
        own, other = (flux_named, sd3_named) if family == "flux" else (sd3_named, flux_named)
        name_score = 0 if own else 2 if other else 1
    else:
        name_score = 0 if {"clip_l": "clip_l", "clip_g": "clip_g", "t5xxl": "t5"}[part] in stem else 1
    return (name_score, _precision_rank(f, stem), f.root != root, str(f.path))


def _precision_rank(f: FoundFile, stem: str) -> int:
    dtype = f.dtype or ""
    if dtype in ("F16", "BF16") or "fp16" in stem or "bf16" in stem:
        return 0
    if dtype == "F32" or "fp32" in stem:
        return 1
    if dtype.startswith("F8") or "fp8" in stem:
        return 3
    return 2


def _missing_message(part: str, family: str, main: FoundFile, candidates: Sequence[FoundFile]) -> str:
    what, file = _WANTED[(part, family)] if part == "vae" else _WANTED[part]
    folder = folder_for(main.root, VAE if part == "vae" else TEXT_ENCODERS)
    message = f"needs {what}: put {file} in {folder}/"
    if part == "vae":
        wrong = [c.path.name for c in candidates if c.kind == "vae-4ch"]
        if wrong:
            message += f" ({', '.join(wrong[:3])}: 4-channel, does not fit)"
    return message
