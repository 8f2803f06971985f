"""What a LoRA file says about itself: name, alias, family, format, trigger words, base model, preview.

Everything comes from the safetensors header (never the tensors) and the files kept beside it, as
A1111, Forge and the civitai helpers lay them out:

- `NAME.json`: A1111's user metadata ("activation text", "sd version", "preferred weight",
  "description"), with the civitai names some tools write ("trainedWords", "baseModel").
- `NAME.civitai.info`: civitai's own answer about the file ("trainedWords", "baseModel").
- `NAME.png` / `NAME.preview.png` (and .jpg, .jpeg, .webp, .gif): the preview picture.
- kohya's `ss_*` metadata in the header: `ss_output_name` (A1111's alias), `ss_tag_frequency`
  (the captions' tags and their counts), `ss_base_model_version`, `ss_sd_model_name`; Easel's own
  `easel.trigger_words`, `easel.base_model` and `easel.family`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.catalog.safetensors_header import UnreadableFile, read_header

log = logging.getLogger(__name__)

PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
SIDECARS = {"json": ".json", "info": ".civitai.info"}  # A1111's user metadata; civitai's answer
MOST_FREQUENT_TAGS = 5
# A1111 lists these metadata keys first, in this order; the rest keep theirs.
METADATA_ORDER = {"ss_sd_model_name": 1, "ss_resolution": 2, "ss_clip_skip": 3, "ss_num_train_images": 10,
                  "ss_tag_frequency": 20}
# Keys whose value is a picture too big to be text anywhere (A1111 drops it as well).
DROPPED_METADATA = ("ssmd_cover_images",)

# Where each detail is read, in order: (source, key). "file" is the header metadata; the rest sidecars.
BASE_MODEL_SOURCES = (("json", "sd version"), ("json", "baseModel"), ("info", "baseModel"),
                      ("file", "ss_base_model_version"), ("file", "easel.base_model"), ("json", "base model"),
                      ("file", "ss_sd_model_name"))
TRIGGER_SOURCES = (("file", "easel.trigger_words"), ("json", "activation text"), ("json", "trainedWords"),
                   ("json", "trained words"), ("info", "trainedWords"))

# A base model's name -> the family of the LoRA (first match wins): "Flux.1 D", "sdxl_base_v1-0", ...
FAMILY_FROM_BASE_MODEL = (
    (re.compile(r"flux", re.I), "flux"),
    (re.compile(r"sd[\s_-]*3|stable[\s_-]*diffusion[\s_-]*3", re.I), "sd3"),
    (re.compile(r"xl|pony|illustrious", re.I), "sdxl"),
    (re.compile(r"sd[\s_-]*v?[12](\b|[._])|stable[\s_-]*diffusion[\s_-]*v?[12]", re.I), "sd1"),
)


@dataclass(frozen=True)
class LoraInfo:
    """One LoRA file as a picker or the API shows it.

    name:  what `<lora:NAME:WEIGHT>` calls it (the file stem).
    alias: A1111's alias: the metadata's "ss_output_name", else the name.
    family: "flux", "sd3", "sdxl", "sd1" from the tensor names (and widths), else from the metadata, or None.
    format: the key layout ("diffusers", "kohya", "lycoris", "xlabs", "bfl", ...; "unknown").
    trigger_words: what the LoRA was trained to answer to (the sidecar's and Easel's words, else the
        captions' most frequent tags).
    activation_text: the sidecar's "activation text", which Forge adds to the prompt with the tag.
    metadata: the header's __metadata__ as stored (every value a string).
    """

    name: str
    alias: str
    path: Path
    family: str | None = None
    format: str = "unknown"
    trigger_words: tuple[str, ...] = ()
    activation_text: str = ""
    base_model: str = ""
    preview: Path | None = None
    description: str = ""
    preferred_weight: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def a1111_metadata(self) -> dict[str, Any]:
        """The metadata as A1111's /sdapi/v1/loras serves it (see `a1111_metadata`)."""
        return a1111_metadata(self.metadata)


def read_lora_info(path: Path) -> LoraInfo:
    """The details of the LoRA at `path`. Never raises: what cannot be read is left empty."""
    path = Path(path)
    name = path.stem
    try:
        tensors, metadata = read_header(path)
    except UnreadableFile as e:
        log.warning("LoRA %s: %s", path, e.reason)
        tensors, metadata = {}, {}
    sources = {"file": metadata, **{source: _sidecar(path, suffix) for source, suffix in SIDECARS.items()}}
    base_model = _first_text(sources, BASE_MODEL_SOURCES)
    explicit = _words(sources, TRIGGER_SOURCES)
    key_format, key_family = _from_keys(tensors)
    return LoraInfo(
        name=name,
        alias=str(metadata.get("ss_output_name") or name),
        path=path,
        family=key_family or _family_named(metadata.get("easel.family")) or family_of_base_model(base_model),
        format=key_format,
        trigger_words=explicit or most_frequent_tags(metadata.get("ss_tag_frequency")),
        activation_text=_text(sources["json"].get("activation text")),
        base_model=base_model,
        preview=find_preview(path),
        description=_text(sources["json"].get("description")),
        preferred_weight=_weight(sources["json"].get("preferred weight")),
        metadata=metadata,
    )


class LoraInfoCache:
    """`read_lora_info` kept per file while the file, its folder (a preview or sidecar added or
    removed) and its sidecars are unchanged, so a list of LoRAs is not read again on every look."""

    def __init__(self) -> None:
        self._known: dict[Path, tuple[tuple, LoraInfo]] = {}
        self._lock = threading.Lock()

    def infos(self, paths) -> list[LoraInfo]:
        """The details of each of `paths`, in order; files no longer asked about are forgotten."""
        paths = [Path(p) for p in paths]
        with self._lock:
            known, self._known = self._known, {}
            for path in paths:
                stamp = _stamp(path)
                cached = known.get(path)
                self._known[path] = cached if cached and cached[0] == stamp else (stamp, read_lora_info(path))
            return [self._known[path][1] for path in paths]

    def info(self, path) -> LoraInfo:
        """The details of one file, cached like the others (the rest are kept)."""
        path = Path(path)
        with self._lock:
            stamp, cached = _stamp(path), self._known.get(path)
            if not (cached and cached[0] == stamp):
                self._known[path] = cached = (stamp, read_lora_info(path))
            return cached[1]


def _stamp(path: Path) -> tuple:
    def of(p: Path) -> tuple:
        try:
            st = p.stat()
        except OSError:
            return ()
        return st.st_mtime_ns, st.st_size

    return (of(path), of(path.parent), *(of(path.with_name(path.stem + suffix)) for suffix in SIDECARS.values()))


def a1111_metadata(metadata: dict[str, str]) -> dict[str, Any]:
    """A1111's form: values that are JSON objects decoded (ss_tag_frequency, ss_dataset_dirs ...),
    its key order, cover images left out."""
    decoded: dict[str, Any] = {}
    for key, value in sorted(metadata.items(), key=lambda kv: METADATA_ORDER.get(kv[0], 999)):
        if key in DROPPED_METADATA:
            continue
        decoded[key] = value
        if isinstance(value, str) and value.startswith("{"):
            try:
                decoded[key] = json.loads(value)
            except ValueError:
                pass
    return decoded


def most_frequent_tags(tag_frequency: str | None, limit: int = MOST_FREQUENT_TAGS) -> tuple[str, ...]:
    """The `limit` most frequent tags of kohya's ss_tag_frequency ({folder: {tag: count}}), all folders
    together; ties keep the order the file lists them in."""
    try:
        folders = json.loads(tag_frequency) if tag_frequency else {}
    except ValueError:
        return ()
    counts: Counter[str] = Counter()
    for tags in folders.values() if isinstance(folders, dict) else ():
        for tag, count in tags.items() if isinstance(tags, dict) else ():
            tag = str(tag).strip()
            if tag and isinstance(count, (int, float)):
                counts[tag] += count
    return tuple(tag for tag, _ in counts.most_common(limit))


def family_of_base_model(base_model: str) -> str | None:
    """The family a base model's name says ("Flux.1 D" -> "flux", "SDXL 1.0" -> "sdxl"), else None."""
    return next((family for pattern, family in FAMILY_FROM_BASE_MODEL if pattern.search(base_model or "")), None)


def find_preview(path: Path) -> Path | None:
    """NAME.png, NAME.preview.png, then the same with .jpg, .jpeg, .webp and .gif (A1111's order)."""
    stem = path.with_suffix("")
    for suffix in PREVIEW_SUFFIXES:
        for candidate in (stem.with_name(stem.name + suffix), stem.with_name(stem.name + ".preview" + suffix)):
            if candidate.is_file():
                return candidate
    return None


def _sidecar(path: Path, suffix: str) -> dict[str, Any]:
    sidecar = path.with_name(path.stem + suffix)
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("LoRA %s: %s is not readable JSON (%s); it is ignored", path.name, sidecar.name, e)
        return {}
    return data if isinstance(data, dict) else {}


def _first_text(sources: dict[str, dict], keys) -> str:
    return next((text for source, key in keys if (text := _text(sources[source].get(key)))), "")


def _words(sources: dict[str, dict], keys) -> tuple[str, ...]:
    """The words of every source, split on commas and new lines, each once, in order."""
    found: dict[str, None] = {}
    for source, key in keys:
        value = sources[source].get(key)
        items = value if isinstance(value, list) else [value]
        for item in items:
            for word in re.split(r"[,\n]", _text(item)):
                if word.strip():
                    found.setdefault(word.strip(), None)
    return tuple(found)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _weight(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value:
        return None  # A1111 writes 0 for "the default"
    return float(value)


def _family_named(name: str | None) -> str | None:
    return name if name in ("flux", "sd3") else None


def _from_keys(tensors: dict) -> tuple[str, str | None]:
    """The key layout and the family guess the LoRA loader makes, from names and shapes alone: the
    tensors it reads are empty ones on torch's meta device, which hold no data."""
    if not tensors:
        return "unknown", None
    import torch  # only once a LoRA is looked at

    from app.addons.lora_formats import detect_format, guess_family

    shapes = {key: torch.empty(shape, device="meta") for key, (_, shape) in tensors.items()}
    return detect_format(tensors), guess_family(shapes)
