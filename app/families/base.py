"""What a model family tells the engine: defaults per variant, pipeline classes per task, call arguments."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class VariantDefaults:
    """Settings a variant is meant to run with (its model card's), used where the request says None."""

    steps: int
    cfg_scale: float  # true classifier-free guidance; <= 1 means off
    guidance: float | None  # distilled guidance (FLUX dev); None where the model has none
    max_sequence_length: int  # T5 tokens; must match what the model was trained with
    width: int = 1024
    height: int = 1024
    negative_prompt: bool = False  # whether a negative prompt has any effect at the default CFG
    true_cfg: bool = True  # whether its pipelines take true CFG (FLUX.1 Fill's does not)
    sampler: str = "Euler"
    schedule_type: str = "Simple"


TASKS = ("txt2img", "img2img", "inpaint")
CONTROLNET = frozenset({"controlnet"})  # the add-on kinds of a ControlNet job's pipeline key
# A FLUX.1 Canny/Depth job's: the control picture's latents go in beside the image's (FluxControlPipeline)
FLUX_CONTROL = frozenset({"flux-control"})


@dataclass(frozen=True)
class Capabilities:
    """What one variant can take; `Engine.submit` checks a request against it before queueing.

    pipelines: (task, the add-on kinds that need a pipeline of their own) -> diffusers class name. A LoRA
    patches the weights and needs none, so its jobs use the (task, frozenset()) entry; ControlNet
    adds (task, {"controlnet"}) entries, FLUX.1 Canny/Depth (task, {"flux-control"}). lora_family: the family whose LoRAs fit (FLUX.1 schnell and dev
    share FLUX LoRAs)."""

    pipelines: Mapping[tuple[str, frozenset[str]], str]
    addon_kinds: frozenset[str] = frozenset({"lora"})
    lora_family: str = ""
    pipeline_addon_kinds: frozenset[str] = frozenset()  # kinds that pick another pipeline class
    crops_to_mask: bool = True  # inpaint "Only masked" (FLUX.1 Fill's pipeline always takes the whole picture)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(task for task, _ in self.pipelines))

    def pipeline_name(self, task: str, addon_kinds=frozenset()) -> str:
        key = (task, frozenset(addon_kinds) & self.pipeline_addon_kinds)
        try:
            return self.pipelines[key]
        except KeyError:
            raise ValueError(f"no pipeline for {task} with {', '.join(sorted(key[1])) or 'no add-ons'} "
                             f"(tasks: {', '.join(self.tasks)})") from None


def task_pipelines(by_task: Mapping[str, str]) -> dict[tuple[str, frozenset[str]], str]:
    """{task: class} as the capability table's keys, for pipelines that no add-on changes."""
    return {(task, frozenset()): name for task, name in by_task.items()}


@dataclass(frozen=True)
class FamilyAdapter:
    """One model family. Each family module builds one of these; the engine reads only this."""

    name: str  # "flux" | "sd3"
    display: str  # "FLUX.1" | "SD3.5"
    variants: Mapping[str, VariantDefaults]
    clip_tokenizer: str  # pipeline attribute of the CLIP tokenizer whose 77-token window is reported
    t5_encoder: str  # pipeline attribute of the T5 encoder (kept on the CPU by small-VRAM plans)
    call_kwargs: Callable[[Any, VariantDefaults], dict[str, Any]]  # (request, defaults) -> pipeline kwargs
    capabilities: Mapping[str, Capabilities] = field(default_factory=dict)  # variant -> what it can take
    cfg_used: Callable[[Mapping[str, Any]], float] = lambda kwargs: 1.0  # the CFG the call applies (infotext)
    infotext_extras: Callable[[str, Mapping[str, Any]], dict[str, Any]] = lambda variant, kwargs: {}
    size_limit: Callable[[Any], int | None] = lambda pipe: None  # the largest side a loaded model takes
    unpack_latents: Callable[..., Any] | None = None  # (latents, height, width, vae_scale_factor) -> BCHW
    # Normalised BCHW latents ((z - shift) x scale) -> what the family's img2img pipeline takes as `image`.
    latents_as_image: Callable[[Any, Any], Any] = lambda latents, vae_config: latents
    hires_upscaler: str = "Latent"  # the hires fix's upscaler when the request names none (A1111's default)
    size_multiple: int = 16

    def capabilities_for(self, variant: str | None) -> Capabilities:
        """The variant's capabilities (an unknown variant gets the family's first one's)."""
        if variant in self.capabilities:
            return self.capabilities[variant]
        return next(iter(self.capabilities.values()))

    def pipeline_class(self, task: str, variant: str | None = None, addon_kinds=frozenset()):
        import diffusers

        return getattr(diffusers, self.capabilities_for(variant).pipeline_name(task, addon_kinds))

    def defaults_for(self, variant: str | None, model_path: Path | None = None) -> VariantDefaults:
        """The variant's defaults, refined by an `easel.json` beside a diffusers folder (demo models use it)."""
        base = self.variants.get(variant or "", next(iter(self.variants.values())))
        meta = read_folder_meta(model_path)
        overrides = {k: v for k, v in (meta.get("defaults") or {}).items() if k in VariantDefaults.__dataclass_fields__}
        if "max_sequence_length" in meta:
            overrides["max_sequence_length"] = int(meta["max_sequence_length"])
        return replace(base, **overrides) if overrides else base


def read_folder_meta(model_path: Path | None) -> dict[str, Any]:
    if model_path is None or not Path(model_path).is_dir():
        return {}
    meta_file = Path(model_path) / "easel.json"
    try:
        data = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def common_call_kwargs(request: Any, defaults: VariantDefaults) -> dict[str, Any]:
    """Arguments every family's pipelines take the same way."""
    from app.addons.prompt_tags import strip_lora_tags

    kwargs: dict[str, Any] = {
        "prompt": strip_lora_tags(request.prompt),  # the encoders never read <lora:...> tags
        "num_inference_steps": request.steps or defaults.steps,
        "max_sequence_length": defaults.max_sequence_length,
    }
    return kwargs
