"""The add-on protocol the engine speaks, and the table of kinds (`lora`, `controlnet`; image references
join it the same way).

    resolved = kind.resolve(addon, index, context)   # at submit: the files exist and fit the variant
    prepared = kind.prepare(loaded, resolved_list)   # on the worker: placed on the loaded model, diffed
                                                     # against what the last job left there
    pipe(**kwargs, **prepared.call_kwargs); infotext.update(prepared.infotext)

A kind keeps what it prepared on the loaded model (`LoadedModel.addon_state[kind]`), so the same set
on the next job costs nothing and another set is switched without reloading the base model; a job
with none of that kind restores the base weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence


@dataclass(frozen=True)
class AddonContext:
    """What resolving an add-on may look at: the model it will run on and the files found."""

    entry: Any  # catalog ModelEntry of the request's model
    capabilities: Any  # families.base.Capabilities of its variant
    catalog: Any  # catalog.scan.CatalogScan
    hash_cache: Any  # generation.model_hash.HashCache
    lora_infos: Any  # catalog.lora_info.LoraInfoCache: what each LoRA file says about itself
    request: Any = None  # the GenerationRequest the add-ons belong to
    size: tuple[int, int] | None = None  # the job's first-pass width x height
    annotators_dir: Path | None = None  # where preprocessors' weights live (models/annotators)


@dataclass
class Prepared:
    """What a job's add-ons give its pipeline call. components: modules the pipeline takes beside the
    base model's ({"controlnet": model}: their names pick the pipeline class); pipeline_kinds: more names
    that pick it, for add-ons that bring no module of their own name (FLUX.1 Canny/Depth: "flux-control");
    extra_images: pictures returned beside the generated ones (ControlNet's detected maps)."""

    call_kwargs: dict[str, Any] = field(default_factory=dict)
    infotext: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    components: dict[str, Any] = field(default_factory=dict)
    extra_images: list[Any] = field(default_factory=list)
    pipeline_kinds: frozenset[str] = frozenset()

    def merge(self, other: "Prepared") -> "Prepared":
        return Prepared({**self.call_kwargs, **other.call_kwargs}, {**self.infotext, **other.infotext},
                        self.warnings + other.warnings, {**self.components, **other.components},
                        self.extra_images + other.extra_images, self.pipeline_kinds | other.pipeline_kinds)


class AddonKind(Protocol):
    kind: str

    def resolve(self, addon: Any, index: int, context: AddonContext) -> Any:
        """Check one add-on of a request before it is queued; InvalidRequest naming addons[index]."""

    def prepare(self, loaded: Any, resolved: Sequence[Any], hash_cache: Any) -> Prepared:
        """Make the loaded model carry exactly `resolved` (possibly none) of this kind."""
