"""One settings object: defaults < settings file < environment (EASEL_*) < command-line flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from app.settings_file import SettingsFile

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    models_dir: Path = PROJECT_ROOT / "models"
    outputs_dir: Path = PROJECT_ROOT / "outputs"
    settings_file: Path = PROJECT_ROOT / "settings.json"
    extra_model_paths: Path | None = None  # ComfyUI-style extra_model_paths.yaml
    extensions_dir: Path | None = None  # the plugin folder; None: ./extensions
    hf_cache: Path | None = None  # defaults to HF_HOME (or ~/.cache/huggingface)
    device: str | None = None  # "cuda", "cuda:1", "mps", "cpu"; None: best available
    lowvram: bool = False
    medvram: bool = False
    force_fp16: bool = False
    no_half: bool = False
    offload: str = "auto"
    max_loaded_models: int = 1
    filename_pattern: str = "[number]-[seed]"
    default_model: str | None = None
    default_preset: str | None = None
    preview_every: int = 4  # web UI: decode a preview every N steps (0: never)
    demo_models: bool = True  # build the embedded demo models when they are missing
    controlnet_units: int = 3  # ControlNet units shown on the generation tabs (sd-webui-controlnet's default)
    first_block_cache: float = 0.0  # First Block Cache threshold for jobs that do not say (0: off; runtime/block_cache.py)
    compile: bool = False  # compile the transformer's repeated blocks when a model loads (torch.compile, regional)
    attention: str = "auto"  # the attention kernel (runtime/attention.py): auto, native, flash, flash3, sage, xformers

    @property
    def extra_model_paths_file(self) -> Path:
        return self.extra_model_paths or self.models_dir / "extra_model_paths.yaml"

    @property
    def hf_cache_dir(self) -> Path:
        if self.hf_cache:
            return self.hf_cache
        return Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")

    def memory_overrides(self):
        from app.runtime.memory import MemoryOverrides

        return MemoryOverrides.from_flags(lowvram=self.lowvram, medvram=self.medvram, force_fp16=self.force_fp16,
                                          no_half=self.no_half, offload=self.offload)


_PATH_FIELDS = {"models_dir", "outputs_dir", "settings_file", "extra_model_paths", "hf_cache", "extensions_dir"}
_BOOL_FIELDS = {"lowvram", "medvram", "force_fp16", "no_half", "demo_models", "compile"}
_INT_FIELDS = {"max_loaded_models", "preview_every", "controlnet_units"}
_FLOAT_FIELDS = {"first_block_cache"}


def _coerce(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _PATH_FIELDS:
        return Path(value).expanduser()
    if name in _BOOL_FIELDS:
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if name in _INT_FIELDS:
        return int(value)
    if name in _FLOAT_FIELDS:
        return float(value)
    return value


def load_settings(cli: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Settings:
    """Merge the layers. Unknown keys in the settings file are ignored; a broken file is reported, not fatal."""
    cli = {k: v for k, v in (cli or {}).items() if v is not None}
    env = os.environ if env is None else env
    names = {f.name for f in fields(Settings)}
    settings = Settings()
    settings_file = Path(cli.get("settings_file") or env.get("EASEL_SETTINGS_FILE") or settings.settings_file)
    layers: list[dict[str, Any]] = [SettingsFile(settings_file).read()]
    layers.append({n: env[f"EASEL_{n.upper()}"] for n in names if f"EASEL_{n.upper()}" in env})
    layers.append(cli)
    merged: dict[str, Any] = {"settings_file": settings_file}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if k in names})
    return replace(settings, **{k: _coerce(k, v) for k, v in merged.items()})


SAVED_FIELDS = ("outputs_dir", "filename_pattern", "preview_every", "default_preset", "default_model", "lowvram",
                "medvram", "force_fp16", "no_half", "offload", "max_loaded_models", "controlnet_units",
                "first_block_cache", "compile", "attention")


def save_settings_file(path: Path, values: dict[str, Any]) -> Path:
    """Merge `values` into the settings file (under its lock); unknown keys are refused by name."""
    unknown = sorted(set(values) - set(SAVED_FIELDS))
    if unknown:
        raise ValueError(f"unknown setting {unknown[0]!r} (saved settings: {', '.join(SAVED_FIELDS)})")
    store = SettingsFile(path)
    store.merge({k: (str(v) if isinstance(v, Path) else v) for k, v in values.items()})
    return store.path
