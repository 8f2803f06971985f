"""What every annotator function is given, and the caller-owned store of loaded detector models."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class LoadedAnnotators:
    """Detector models kept loaded between runs, by whoever holds this object (the engine, a test).

    Without one, a detector is read from disk on each run; nothing is cached at module level.
    """

    models: dict[tuple, Any] = field(default_factory=dict)

    def get(self, key: tuple, load: Callable[[], Any]) -> Any:
        if key not in self.models:
            self.models[key] = load()
        return self.models[key]

    def clear(self) -> None:
        self.models.clear()


@dataclass(frozen=True)
class AnnotatorCall:
    """One run's settings, the sliders already resolved to numbers within their ranges."""

    resolution: int
    threshold_a: float
    threshold_b: float
    annotators_dir: Path
    device: str = "cpu"
    loaded: LoadedAnnotators | None = None

    def model(self, key: tuple, load: Callable[[], Any]) -> Any:
        """The model under `key`, from the store when there is one, else loaded now."""
        if self.loaded is None:
            return load()
        return self.loaded.get(key + (str(self.device),), load)


@dataclass(frozen=True)
class WeightOption:
    """One way to have a detector's weights: these files in this folder of the annotators folder."""

    folder: str
    files: tuple[str, ...]
    source: str  # where the files are published

    def present(self, annotators_dir: Path) -> bool:
        return all((Path(annotators_dir) / self.folder / f).is_file() for f in self.files)


@dataclass(frozen=True)
class WeightNeed:
    """Weights a detector needs, met by the first of its options found on disk."""

    options: tuple[WeightOption, ...]

    def found(self, annotators_dir: Path) -> WeightOption | None:
        return next((o for o in self.options if o.present(annotators_dir)), None)

    def describe(self, annotators_dir: Path) -> str:
        """Each folder and source once: "dir/lineart/ (a.safetensors or a.pth) from repo"."""
        groups: dict[tuple[str, str], list[str]] = {}
        for o in self.options:
            groups.setdefault((o.folder, o.source), []).append(", ".join(o.files))
        return " or ".join(f"{Path(annotators_dir) / folder}/ ({' or '.join(files)}) from {source}"
                           for (folder, source), files in groups.items())
