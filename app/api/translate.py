"""A1111 txt2img / img2img bodies -> GenerationRequest, with what was ignored and why.

Errors name the A1111 field the client sent (n_iter, denoising_strength, init_images[0], ...), not
Easel's own names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from PIL import ImageOps

from app.api.checkpoints import find_checkpoint
from app.api.controlnet_units import AlwaysOnUnits, alwayson_units
from app.api.images import decode_image, mask_luminance
from app.api.scripts import IMG2IMG_SCRIPTS, SCRIPT_ARG_FIELDS, script_for
from app.api.schemas import GenerationBody, Img2ImgRequest, Txt2ImgRequest
from app.errors import InvalidRequest, ModelNotFound
from app.generation.request import GenerationRequest, validate_request

# GenerationRequest field -> the A1111 field a client sets it with.
A1111_NAMES = {
    "batch_count": "n_iter",
    "strength": "denoising_strength",
    "guidance": "distilled_cfg_scale",
    "image": "init_images[0]",
    "inpaint_only_masked": "inpaint_full_res",
    "inpaint_padding": "inpaint_full_res_padding",
    "save": "save_images",
    "model": "override_settings.sd_model_checkpoint",
    "preview_every": "show_progress_every_n_steps",
}
RESIZE_MODES = {0: "just-resize", 1: "crop-and-resize", 2: "resize-and-fill", 3: "just-resize"}
INPAINTING_FILL = {0: "fill", 1: "original", 2: "latent noise", 3: "latent nothing"}
MASKED_CONTENT = {0: "fill", 1: "original", 2: "latent-noise", 3: "latent-noise"}
EULER_NAMES = {"euler", "k_euler", "euler (flow matching)", "flow_match_euler", "flowmatcheuler", "flow-matching euler"}
SCHEDULER_NAMES = {"simple", "automatic", "default"}

# A1111 fields that do not apply to FLUX.1 / SD3.5, with the values that ask for nothing: a field sent
# with one of these is not reported as ignored. Unknown fields are reported unless empty.
NEUTRAL_VALUES: dict[str, tuple[Any, ...]] = {
    "subseed": (-1,),
    "subseed_strength": (0,),
    "seed_resize_from_h": (-1, 0),
    "seed_resize_from_w": (-1, 0),
    "eta": (0, 1),
    "s_churn": (0,),
    "s_tmax": (0,),
    "s_tmin": (0,),
    "s_noise": (1,),
    "s_min_uncond": (0,),
    "initial_noise_multiplier": (1,),
    "image_cfg_scale": (1, 1.5),
    "mask_round": (True,),
    "seed_enable_extras": (True,),
    "refiner_switch_at": (0,),
}
# Hires-fix fields: they do something in A1111 only together with enable_hr.
HIRES_PREFIXES = ("hr_", "firstphase_")


@dataclass
class Translation:
    request: GenerationRequest
    ignored_fields: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    keep_model: str | None = None  # override_settings model to keep selected afterwards
    units: AlwaysOnUnits = field(default_factory=AlwaysOnUnits)  # the ControlNet units and where each came from


# A1111 / Forge hires-fix field -> HiresStage field.
HIRES_FIELDS = {"hr_scale": "scale", "hr_resize_x": "resize_x", "hr_resize_y": "resize_y", "hr_upscaler": "upscaler",
                "hr_second_pass_steps": "steps", "hr_cfg": "cfg_scale", "hr_distilled_cfg": "guidance",
                "hr_prompt": "prompt", "hr_negative_prompt": "negative_prompt"}
HIRES_DENOISING_DEFAULT = 0.7  # A1111's and Forge's
# Hires fields that choose what Easel has one of: these values ask for nothing else.
HIRES_SAME = {"hr_checkpoint_name": ("use same checkpoint", ""), "hr_sampler_name": ("use same sampler", ""),
              "hr_scheduler": ("use same scheduler", ""), "hr_additional_modules": ("use same choices",)}


# A1111's refiner: the model that takes over after `refiner_switch_at` of the steps. Easel runs it as a
# refine stage denoising the last 1 - switch_at of its schedule.
REFINER_FIELDS = ("refiner_checkpoint", "refiner_switch_at")
REFINER_NONE = ("", "none")
REFINER_SWITCH_DEFAULT = 0.8  # A1111's


def translate_txt2img(body: Txt2ImgRequest, *, engine, default_model: str | None, preview_every: int) -> Translation:
    ignored, notes = _common_ignored(body), []
    fields = _common_fields(body, engine, default_model, preview_every, notes)
    stages = _hires_stages(body, engine, ignored, notes) if body.enable_hr else []
    refiner = _refiner_stages(body, engine, notes)
    if refiner and any(stage["kind"] == "refine" for stage in stages):
        raise InvalidRequest("hr_checkpoint_name", "another model for the hires pass and refiner_checkpoint cannot "
                             "be combined in one job: choose one")
    fields["stages"] = stages + refiner
    units = _controlnet_units(body, fields, engine, ignored, notes, hires=bool(stages))
    return _build("txt2img", fields, ignored, notes, body, engine, units)


def _refiner_stages(body: GenerationBody, engine, notes: list[str]) -> list[dict[str, Any]]:
    """refiner_checkpoint / refiner_switch_at as a refine stage ([] when no refiner is asked for)."""
    extras = _extras(body)
    name = extras.get("refiner_checkpoint")
    if name is None or (isinstance(name, str) and name.strip().lower() in REFINER_NONE):
        return []
    if not isinstance(name, str):
        raise InvalidRequest("refiner_checkpoint", "expected a model title (see /sdapi/v1/sd-models)")
    switch = extras.get("refiner_switch_at")
    switch = REFINER_SWITCH_DEFAULT if switch in (None, 0) else switch
    if isinstance(switch, bool) or not isinstance(switch, (int, float)) or not 0 < switch <= 1:
        raise InvalidRequest("refiner_switch_at", f"{switch!r} is out of range: the refiner takes over after "
                                                  "this fraction of the steps, 0 < refiner_switch_at < 1")
    if switch == 1:
        notes.append("refiner_switch_at 1: the refiner would take over after the last step, so it was not run")
        return []
    try:
        model = find_checkpoint(engine, name).name
    except ModelNotFound as exc:
        raise ModelNotFound(f"refiner_checkpoint: {exc}") from None
    return [{"kind": "refine", "model": model, "strength": round(1 - switch, 6)}]


def _hires_stages(body: Txt2ImgRequest, engine, ignored: list[str], notes: list[str]) -> list[dict[str, Any]]:
    """The hires stage; with hr_checkpoint_name another model, the hires pass is that model's: the
    pictures upscaled (strength 0), then a refine stage with it, as A1111 runs its hires checkpoint."""
    stage = _hires_stage(body, ignored, notes)
    name = _extras(body).get("hr_checkpoint_name")
    if not name or (isinstance(name, str) and name.strip().lower() in HIRES_SAME["hr_checkpoint_name"]) \
            or stage["strength"] == 0:  # nothing for the other model to denoise
        return [stage]
    if not isinstance(name, str):
        raise InvalidRequest("hr_checkpoint_name", "expected a model title (see /sdapi/v1/sd-models)")
    try:
        model = find_checkpoint(engine, name).name
    except ModelNotFound as exc:
        raise ModelNotFound(f"hr_checkpoint_name: {exc}") from None
    refine = {"kind": "refine", "model": model, "strength": stage["strength"]}
    for ours in ("steps", "prompt", "negative_prompt", "cfg_scale", "guidance"):
        if ours in stage:
            refine[ours] = stage.pop(ours)
    return [{**stage, "strength": 0}, refine]


def _hires_stage(body: Txt2ImgRequest, ignored: list[str], notes: list[str]) -> dict[str, Any]:
    """enable_hr and the hr_* fields as a hires stage; the ones Easel has no choice for are listed."""
    extras = _extras(body)
    stage: dict[str, Any] = {"kind": "hires", "strength": body.denoising_strength
                             if body.denoising_strength is not None else HIRES_DENOISING_DEFAULT}
    for a1111, ours in HIRES_FIELDS.items():
        value = extras.get(a1111)
        if value is not None:
            stage[ours] = value
    for key, same in HIRES_SAME.items():
        value = extras.get(key)
        if key == "hr_checkpoint_name":  # another model: a refine stage with it (_hires_stages)
            continue
        if value and not (isinstance(value, str) and value.strip().lower() in same):
            ignored.append(key)
            notes.append(f"{key} {value!r} is not available for the hires pass: the first pass's is used")
    ignored += [k for k in extras if k.startswith("firstphase_") and not _is_empty(extras[k])]
    return stage


def translate_img2img(body: Img2ImgRequest, *, engine, default_model: str | None, preview_every: int) -> Translation:
    ignored, notes = _common_ignored(body), []
    images = body.init_images or []
    if not images:
        raise InvalidRequest("init_images", "img2img needs at least one base64 image")
    image = decode_image(images[0], "init_images[0]")
    if len(images) > 1:
        ignored.append("init_images[1:]")
        notes.append(f"{len(images)} init_images were sent; Easel uses the first one for every image")
    if body.resize_mode not in RESIZE_MODES:
        raise InvalidRequest("resize_mode", f"{body.resize_mode!r} is out of range: allowed 0..3")
    if body.resize_mode == 3:
        notes.append("resize_mode 3 (latent upscale) is done as 0 (just resize)")
    if body.inpainting_fill not in INPAINTING_FILL:
        raise InvalidRequest("inpainting_fill", f"{body.inpainting_fill!r} is out of range: allowed 0..3")
    fields = _common_fields(body, engine, default_model, preview_every, notes)
    fields.update(task="img2img", image=image, resize_mode=RESIZE_MODES[body.resize_mode],
                  stages=_refiner_stages(body, engine, notes))
    if body.denoising_strength is not None:
        fields["strength"] = body.denoising_strength
    if body.mask:
        mask = decode_image(body.mask, "mask")
        if body.inpainting_mask_invert:
            mask = ImageOps.invert(mask_luminance(mask))
        only_masked = body.inpaint_full_res
        if only_masked and mask_luminance(mask).getbbox() is None:
            # diffusers cannot crop to an empty area; with nothing to repaint, the whole picture is the same.
            only_masked = False
            notes.append("the mask is empty (nothing to repaint): inpaint_full_res was not applied")
        fields.update(task="inpaint", mask=mask, inpaint_only_masked=only_masked,
                      inpaint_padding=body.inpaint_full_res_padding)
        if body.mask_blur is not None:
            fields["mask_blur"] = body.mask_blur
        fields["masked_content"] = MASKED_CONTENT[body.inpainting_fill]
        if body.inpainting_fill == 3:
            notes.append("inpainting_fill 3 (latent nothing) runs as 2 (latent noise): flow-matching models "
                         "start the masked area from noise either way")
    elif body.inpainting_mask_invert:
        ignored.append("inpainting_mask_invert")
    _apply_script(body, fields, engine, ignored, notes)
    units = _controlnet_units(body, fields, engine, ignored, notes)
    return _build(fields.pop("task"), fields, ignored, notes, body, engine, units)


def _controlnet_units(body: GenerationBody, fields: dict[str, Any], engine, ignored: list[str], notes: list[str],
                      hires: bool = False) -> AlwaysOnUnits:
    """alwayson_scripts: sd-webui-controlnet's units become the request's ControlNet add-ons; other
    scripts are listed as ignored."""
    units = alwayson_units(_extras(body).get("alwayson_scripts"), engine=engine, model=fields.get("model"),
                           hires=hires)
    if units.addons:
        fields["addons"] = tuple(units.addons)
    ignored += units.ignored
    notes += units.notes
    return units


def _apply_script(body: Img2ImgRequest, fields: dict[str, Any], engine, ignored: list[str], notes: list[str]) -> None:
    """script_name / script_args: a script Easel has sets the request's stages; another stays ignored."""
    extras = _extras(body)
    name = extras.get("script_name")
    if _is_empty(name):
        return
    script = script_for(name)
    if script is None:
        notes.append(f"script {name!r} is not available (Easel has: {', '.join(IMG2IMG_SCRIPTS)})")
        return
    args = extras.get("script_args") or []
    if not isinstance(args, list):
        raise InvalidRequest("script_args", "expected a list: the script's arguments in A1111's order")
    script(args, fields, engine, notes)
    ignored[:] = [key for key in ignored if key not in ("script_name", "script_args")]


def _common_fields(body: GenerationBody, engine, default_model, preview_every, notes) -> dict[str, Any]:
    sampler = body.sampler_name or body.sampler_index
    if sampler and sampler.strip().lower() not in EULER_NAMES:
        notes.append(f"sampler {sampler!r} is not available for FLUX.1 / SD3.5; Euler (flow matching) was used")
    if body.scheduler and body.scheduler.strip().lower() not in SCHEDULER_NAMES:
        notes.append(f"scheduler {body.scheduler!r} is not available; Simple was used")
    return dict(
        prompt=body.prompt or "",
        negative_prompt=body.negative_prompt or "",
        model=_model_for(body, engine) or default_model,
        width=body.width,
        height=body.height,
        steps=body.steps,
        cfg_scale=body.cfg_scale,
        guidance=body.distilled_cfg_scale,
        seed=body.seed,
        batch_size=body.batch_size,
        batch_count=body.n_iter,
        save=body.save_images,
        preview_every=preview_every,
    )


def _model_for(body: GenerationBody, engine) -> str | None:
    title = (body.override_settings or {}).get("sd_model_checkpoint")
    if title is None:
        return None
    if not isinstance(title, str):
        raise InvalidRequest("override_settings.sd_model_checkpoint",
                             "expected a model title (see /sdapi/v1/sd-models)")
    try:
        return find_checkpoint(engine, title).name
    except ModelNotFound as exc:
        raise ModelNotFound(f"override_settings.sd_model_checkpoint: {exc}") from None


def _build(task, fields, ignored, notes, body: GenerationBody, engine, units: AlwaysOnUnits) -> Translation:
    try:
        request = validate_request(task=task, **fields)
    except InvalidRequest as exc:
        raise InvalidRequest(a1111_field(exc.field, fields.get("stages", ()), units), exc.message) from None
    keep = None
    if not body.override_settings_restore_afterwards and (body.override_settings or {}).get("sd_model_checkpoint"):
        keep = request.model
    return Translation(request=request, ignored_fields=ignored, notes=notes, keep_model=keep, units=units)


def a1111_field(field: str, stages=(), units: AlwaysOnUnits | None = None) -> str:
    """The A1111 field a client sent for one of the request's: stages[0].scale -> hr_scale (a hires
    stage), stages[1].model -> refiner_checkpoint (a refine stage), addons[0].model ->
    alwayson_scripts.controlnet.args[0].model (a ControlNet unit)."""
    sent = units.client_field(field) if units is not None else None
    if sent is not None:
        return sent
    match = re.fullmatch(r"stages\[(\d+)\]\.(\w+)", field)
    if match and int(match[1]) < len(stages):
        stage, ours = stages[int(match[1])], match[2]
        kind = stage["kind"] if isinstance(stage, dict) else stage.kind
        if kind in SCRIPT_ARG_FIELDS:
            return SCRIPT_ARG_FIELDS[kind].get(ours, field)
        if kind == "refine":
            return {"model": "refiner_checkpoint", "strength": "refiner_switch_at"}.get(ours, field)
        if ours == "strength":
            return "denoising_strength"
        return next((a for a, o in HIRES_FIELDS.items() if o == ours), field)
    return A1111_NAMES.get(field, field)


def _extras(body: GenerationBody) -> dict[str, Any]:
    return dict(body.model_extra or {})


def _common_ignored(body: GenerationBody) -> list[str]:
    ignored = []
    if body.styles:
        ignored.append("styles")
    for key in (body.override_settings or {}):
        if key != "sd_model_checkpoint":
            ignored.append(f"override_settings.{key}")
    for key, value in _extras(body).items():
        if key.startswith(HIRES_PREFIXES) or key in REFINER_FIELDS or _is_empty(value) or _is_neutral(key, value) \
                or key == "alwayson_scripts":  # what of it is not used is listed by _controlnet_units
            continue
        ignored.append(key)
    return ignored


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value == "" or value == [] or value == {}


def _is_neutral(key: str, value: Any) -> bool:
    neutral = NEUTRAL_VALUES.get(key, ())
    return any(type(value) is not bool and value == n or value is n for n in neutral)
