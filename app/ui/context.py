"""What every tab needs: the engine, the settings, the presets. Passed explicitly, never global."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.engine.engine import Engine
from app.presets import Preset, load_presets
from app.settings import Settings

ASPECT_RATIOS = {"1:1": (1, 1), "4:3": (4, 3), "3:2": (3, 2), "16:9": (16, 9), "3:4": (3, 4), "2:3": (2, 3), "9:16": (9, 16)}


@dataclass
class UIContext:
    engine: Engine
    settings: Settings
    presets: dict[str, Preset] = field(default_factory=dict)
    preset_errors: list[str] = field(default_factory=list)
    presets_dir: Path | None = None
    preview_every: int = 4  # decode a preview every N steps (Settings tab)

    @classmethod
    def create(cls, engine: Engine, settings: Settings, presets_dir: Path) -> "UIContext":
        presets, errors = load_presets(presets_dir)
        return cls(engine=engine, settings=settings, presets=presets, preset_errors=errors, presets_dir=presets_dir,
                   preview_every=settings.preview_every)

    _clip_tokenizer: object = None

    def clip_tokenizer(self):
        """CLIP's BPE tokenizer (the same vocabulary for every FLUX and SD3.5 model), loaded on first use."""
        if self._clip_tokenizer is None:
            from app.demo.tokenizers import load_clip_tokenizer

            self._clip_tokenizer = load_clip_tokenizer()
        return self._clip_tokenizer

    def preset(self, name: str | None) -> Preset | None:
        return self.presets.get(name or "")

    def model_choices(self, refresh: bool = False) -> list[tuple[str, str]]:
        """(label, name) pairs for the model dropdown: ready models first, with family and variant shown."""
        out = []
        for m in self.engine.models(refresh):
            if not m.ready:
                continue
            label = f"{m.name} · {m.family}/{m.variant}" + (f" · {m.label}" if m.label else "")
            out.append((label, m.name))
        return out


def size_for_aspect(ratio: str, long_side: int) -> tuple[int, int]:
    """Width and height (multiples of 16) for an aspect ratio with the given longer side."""
    rw, rh = ASPECT_RATIOS[ratio]
    if rw >= rh:
        w, h = long_side, long_side * rh / rw
    else:
        w, h = long_side * rw / rh, long_side
    return max(64, int(round(w / 16)) * 16), max(64, int(round(h / 16)) * 16)
