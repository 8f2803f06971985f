"""What the catalog knows about one model: the record every other part of Easel reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

FAMILIES = ("flux", "sd3")
VARIANTS = {
    "flux": ("flux-schnell", "flux-dev", "flux-fill"),
    "sd3": ("sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium"),
}
# Keys of ModelEntry.parts. A diffusers folder has only "folder"; a single-file model names each file.
PART_KEYS = ("folder", "checkpoint", "transformer", "clip_l", "clip_g", "t5xxl", "vae")

READY, MISSING, UNREADABLE = "ready", "missing", "unreadable"
# A folder whose loading would run Python code that came with it (see custom_code.py).
CUSTOM_CODE = "custom code"


@dataclass(frozen=True)
class ModelEntry:
    """One generation model as found on disk.

    name:    the title shown in dropdowns and accepted by --model (unique within a scan).
    family:  "flux" | "sd3" | None when unknown.
    variant: one of VARIANTS[family] | None.
    format:  "diffusers" (a folder with model_index.json, also inside the HF cache) or
             "single-file" (a transformer or all-in-one checkpoint .safetensors, paired with
             text-encoder and VAE files found beside it).
    path:    the folder or the main .safetensors file.
    size_bytes: all parts together.
    status:  READY | MISSING (parts missing, listed in problems) | UNREADABLE (why in problems) |
             CUSTOM_CODE (loading would run code shipped with the folder; what code in problems).
             Only READY models load, and only they can be the default model.
    problems: human-readable reasons, each naming the file or part and where it should be.
    parts:   PART_KEYS -> Path of the file (or folder) for that part.
    key_layout: "bfl" (original / ComfyUI keys, maybe under "model.diffusion_model.") or
             "diffusers"; None for folders.
    demo:    True for the embedded demo models (labelled as such everywhere).
    label:   extra text shown after the name (e.g. "demo (random weights)").
    """

    name: str
    family: str | None
    variant: str | None
    format: str
    path: Path
    size_bytes: int
    status: str
    problems: tuple[str, ...] = ()
    parts: dict[str, Path] = field(default_factory=dict)
    key_layout: str | None = None
    demo: bool = False
    label: str = ""

    @property
    def ready(self) -> bool:
        return self.status == READY

    @property
    def title(self) -> str:
        return f"{self.name} [{self.label}]" if self.label else self.name
