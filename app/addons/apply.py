"""The engine's side of add-ons: read them from the request (and its `<lora:...>` tags), check them
against the variant's capabilities before queueing, and prepare them on the loaded model for a job.

    request = with_prompt_addons(request)                      # tags -> LoraAddon(from_prompt=True)
    check_addons(request, context)                             # at submit: 422 naming addons[i]
    prepared = prepare_addons(loaded, request, context, cache) # on the worker, before the pipeline call
"""

from __future__ import annotations

from app.addons.base import AddonContext, Prepared
from app.addons.controlnet import CONTROLNET
from app.addons.lora import LORA
from app.addons.prompt_tags import find_lora_tags
from app.errors import InvalidRequest
from app.generation.request import LoraAddon, validate_request

ADDON_KINDS = {kind.kind: kind for kind in (LORA, CONTROLNET)}


def with_prompt_addons(request):
    """The request with its prompt's `<lora:NAME:WEIGHT>` tags as LoRA add-ons (the tags stay in the
    prompt). A LoRA also given in `addons` keeps the weight given there."""
    tags = find_lora_tags(request.prompt)
    if not tags:
        return request
    given = {a.name.lower() for a in request.addons if a.kind == "lora"}
    added = []
    for tag in tags:
        if tag.name.lower() in given:
            continue
        given.add(tag.name.lower())
        added.append(LoraAddon(name=tag.name, weight=tag.weight, text_encoder_weight=tag.text_encoder_weight,
                               from_prompt=True))
    return validate_request(**{**dict(request), "addons": (*request.addons, *added)})


def resolve_addons(request, context: AddonContext) -> list:
    """Each add-on checked against the model's variant: the kind is one it takes, the files exist and
    fit. InvalidRequest names addons[i] and says what is allowed."""
    resolved = []
    for index, addon in enumerate(request.addons):
        if addon.kind not in context.capabilities.addon_kinds or addon.kind not in ADDON_KINDS:
            takes = ", ".join(sorted(context.capabilities.addon_kinds)) or "none"
            raise InvalidRequest(f"addons[{index}].kind", f"{context.entry.variant or context.entry.family} takes no "
                                                          f"{addon.kind} add-ons (it takes: {takes})")
        item = ADDON_KINDS[addon.kind].resolve(addon, index, context)
        resolved.append(item)
        resolved.extend(getattr(item, "brings", ()))  # parts other kinds prepare (a control LoRA's LoRA)
    for kind in ADDON_KINDS.values():
        check_together = getattr(kind, "check_together", None)
        if check_together is not None:
            check_together([r for r in resolved if getattr(r, "kind", "lora") == kind.kind])
    _check_pipeline(request, context)
    return resolved


def _check_pipeline(request, context: AddonContext) -> None:
    """The variant has a pipeline for this task with these add-on kinds (SD3.5 has ControlNet for txt2img only)."""
    capabilities = context.capabilities
    kinds = {a.kind for a in request.addons if getattr(a, "active", True)} & capabilities.pipeline_addon_kinds
    if not kinds or (request.task, frozenset(kinds)) in capabilities.pipelines:
        return
    index = next(i for i, a in enumerate(request.addons) if a.kind in kinds)
    with_kinds = [task for task, k in capabilities.pipelines if k == frozenset(kinds)]
    model = context.entry.variant or context.entry.family
    raise InvalidRequest(f"addons[{index}].kind", f"{model} has no {' + '.join(sorted(kinds))} pipeline for "
                                                  f"{request.task} (it has one for: {', '.join(with_kinds) or 'none'})")


def addon_model_bytes(resolved: list) -> int:
    """The 16-bit bytes of the models a job's add-ons run beside the transformer (each file once): what the
    memory plan keeps room for. LoRAs are fused into the weights, so they take none."""
    from app.addons.controlnet import unit_model_bytes

    return unit_model_bytes([r for r in resolved if getattr(r, "kind", "lora") == "controlnet"])


def prepare_addons(loaded, resolved: list, hash_cache) -> Prepared:
    """Every kind brought to exactly this job's add-ons (a kind the job has none of is restored)."""
    prepared = Prepared()
    for kind in ADDON_KINDS.values():
        mine = [r for r in resolved if getattr(r, "kind", "lora") == kind.kind]
        prepared = prepared.merge(kind.prepare(loaded, mine, hash_cache))
    return prepared
