"""GenerationRequest: what every front end (UI, API, CLI) builds and the engine runs.

Validated before any model loads. Errors name the field and the allowed range (see `validate_request`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator,
                      model_validator)

from app.errors import InvalidRequest

TASKS = ("txt2img", "img2img", "inpaint")
RESIZE_MODES = ("just-resize", "crop-and-resize", "resize-and-fill")
MIN_SIZE, MAX_SIZE, SIZE_MULTIPLE = 64, 4096, 16
MAX_PROMPT_CHARS = 20_000
MAX_BATCH_SIZE, MAX_BATCH_COUNT = 16, 100
MAX_STEPS = 150
MAX_SEED = 2**32 - 1


MAX_ADDONS = 16
MAX_ADDON_WEIGHT = 10.0


class LoraAddon(BaseModel):
    """A LoRA by name (file stem or alias, as `<lora:NAME:WEIGHT>` writes it) with its strengths."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["lora"] = "lora"
    name: str = Field(min_length=1, max_length=255)
    weight: float = Field(1.0, ge=-MAX_ADDON_WEIGHT, le=MAX_ADDON_WEIGHT, allow_inf_nan=False)
    text_encoder_weight: float | None = Field(None, ge=-MAX_ADDON_WEIGHT, le=MAX_ADDON_WEIGHT, allow_inf_nan=False)
    from_prompt: bool = False  # read from a <lora:...> tag of the prompt (the tag stays in the prompt)


CONTROL_MODES = ("balanced", "prompt", "controlnet")  # sd-webui-controlnet's three, in its order
MAX_CONTROL_WEIGHT = 2.0
MIN_PROCESSOR_RES, MAX_PROCESSOR_RES = 64, 2048


class ControlNetAddon(BaseModel):
    """A ControlNet unit, as sd-webui-controlnet and Forge have them.

    model: a ControlNet file's name (stem) from the controlnet folders. image: the control picture;
    None takes the job's input image (img2img / inpaint). module: the preprocessor run on it first
    ("none": the picture is already a control map). mask: where the unit acts (white), None: everywhere.
    weight: the conditioning scale; guidance_start / guidance_end: the part of the schedule it acts in.
    control_mode: "balanced", "prompt" (My prompt is more important) or "controlnet" (ControlNet is
    more important). resize_mode: how the picture is fitted to the job's size. processor_res and
    threshold_a / threshold_b: the preprocessor's resolution and settings (None: its defaults);
    pixel_perfect: the resolution computed from the picture and the job's size instead. control_type:
    which mode of a union model ("canny", "depth"...); "" takes the preprocessor's."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    kind: Literal["controlnet"] = "controlnet"
    model: str = Field(min_length=1, max_length=255)
    module: str = Field("none", min_length=1, max_length=255)
    image: Any = None
    mask: Any = None
    weight: float = Field(1.0, ge=0.0, le=MAX_CONTROL_WEIGHT, allow_inf_nan=False)
    guidance_start: float = Field(0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    guidance_end: float = Field(1.0, ge=0.0, le=1.0, allow_inf_nan=False)
    control_mode: Literal["balanced", "prompt", "controlnet"] = "balanced"
    resize_mode: Literal["just-resize", "crop-and-resize", "resize-and-fill"] = "crop-and-resize"
    pixel_perfect: bool = False
    processor_res: int = Field(512, ge=MIN_PROCESSOR_RES, le=MAX_PROCESSOR_RES)
    threshold_a: float | None = Field(None, allow_inf_nan=False)
    threshold_b: float | None = Field(None, allow_inf_nan=False)
    control_type: str = Field("", max_length=64)
    save_detected_map: bool = False

    @field_validator("image", "mask")
    @classmethod
    def _pil_image(cls, v: Any) -> Any:
        return _checked_image(v)

    @model_validator(mode="after")
    def _schedule(self) -> "ControlNetAddon":
        if self.guidance_start > self.guidance_end:
            raise ValueError(f"guidance_start: {self.guidance_start} is after guidance_end {self.guidance_end}; "
                             "the start must not be after the end")
        return self

    @property
    def active(self) -> bool:
        """Whether the unit changes anything: weight 0 or an empty schedule leave it out entirely."""
        return self.weight > 0 and self.guidance_end > self.guidance_start


def _addon_kind(value: Any) -> str:
    """An add-on's kind; one without a `kind` is a LoRA (the only kind there was at first)."""
    if isinstance(value, dict):
        return value.get("kind", "lora")
    return getattr(value, "kind", "lora")


# Add-ons, discriminated on `kind` (image references join the same way).
AddOn = Annotated[Union[Annotated[LoraAddon, Tag("lora")], Annotated[ControlNetAddon, Tag("controlnet")]],
                  Discriminator(_addon_kind)]

MAX_STAGES = 4
MAX_HIRES_SCALE = 8.0


class HiresStage(BaseModel):
    """A1111's hires fix: the first pass's pictures upscaled, then denoised again at the larger size.

    scale, or resize_x / resize_y (one: the other follows the aspect; both: cover, then crop to it);
    sizes are snapped to multiples of 16. upscaler: a pixel upscaler's name (Lanczos, an upscaler model
    file...) or a latent mode ("Latent", "Latent (bicubic)"...); "" is the family's default. steps 0:
    the first pass's. prompt / negative_prompt "": the first pass's. cfg_scale / guidance None: the
    first pass's. save_first_pass: also save the pictures before the hires pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["hires"] = "hires"
    scale: float = Field(2.0, ge=1.0, le=MAX_HIRES_SCALE, allow_inf_nan=False)
    resize_x: int = Field(0, ge=0, le=MAX_SIZE)
    resize_y: int = Field(0, ge=0, le=MAX_SIZE)
    upscaler: str = Field("", max_length=255)
    steps: int = Field(0, ge=0, le=MAX_STEPS)
    strength: float = Field(0.7, ge=0.0, le=1.0, allow_inf_nan=False)
    cfg_scale: float | None = Field(None, ge=0.0, le=30.0)
    guidance: float | None = Field(None, ge=0.0, le=30.0)
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    save_first_pass: bool = False


class RefineStage(BaseModel):
    """The pictures denoised again by another model, same seeds: FLUX schnell's draft, dev's final.

    Runs once after every batch's earlier passes, so the models swap once per job. strength: how much of
    the refining model's schedule it runs (A1111's refiner switching at 0.8 is strength 0.2). steps 0,
    cfg_scale / guidance None: the refining model's defaults. prompt / negative_prompt "": the job's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["refine"] = "refine"
    model: str = Field(min_length=1, max_length=255)
    strength: float = Field(0.35, gt=0.0, le=1.0, allow_inf_nan=False)
    steps: int = Field(0, ge=0, le=MAX_STEPS)
    cfg_scale: float | None = Field(None, ge=0.0, le=30.0)
    guidance: float | None = Field(None, ge=0.0, le=30.0)
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)


MAX_TILED_OUTPUT = MAX_SIZE * 2  # a side of a tiled upscale's picture (only its tiles go through the model)


class TiledUpscaleStage(BaseModel):
    """A1111's SD upscale: the pictures upscaled `scale` times by a pixel upscaler, then denoised again
    by the job's model tile by tile (tiles overlapping by `overlap` px, blended with feathered edges), so
    memory stays that of one tile whatever the picture's size.

    tile_width / tile_height 0: the job's size (A1111's SD upscale takes the img2img size as its tile).
    On an img2img job at denoising strength 0 the input itself is upscaled, as it is: the Upscale tab's
    and A1111's img2img script. upscaler "": Lanczos. steps 0, cfg_scale / guidance None, prompt "": the
    job's. Every tile of a picture takes the picture's seed, as A1111's script does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["tiled_upscale"] = "tiled_upscale"
    scale: float = Field(2.0, ge=1.0, le=MAX_HIRES_SCALE, allow_inf_nan=False)
    upscaler: str = Field("", max_length=255)
    tile_width: int = Field(0, ge=0, le=MAX_SIZE)
    tile_height: int = Field(0, ge=0, le=MAX_SIZE)
    overlap: int = Field(64, ge=0, le=MAX_SIZE // 2)
    strength: float = Field(0.3, ge=0.0, le=1.0, allow_inf_nan=False)
    steps: int = Field(0, ge=0, le=MAX_STEPS)
    cfg_scale: float | None = Field(None, ge=0.0, le=30.0)
    guidance: float | None = Field(None, ge=0.0, le=30.0)
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)

    @field_validator("tile_width", "tile_height")
    @classmethod
    def _tile_multiple_of_16(cls, v: int) -> int:
        if v and (v % SIZE_MULTIPLE or v < MIN_SIZE):
            raise ValueError(f"must be 0 (the job's size) or a multiple of {SIZE_MULTIPLE} from {MIN_SIZE}")
        return v


# Stages after the first pass, discriminated on `kind` as outpaint joins them.
Stage = Annotated[Union[HiresStage, RefineStage, TiledUpscaleStage], Field(discriminator="kind")]


class GenerationRequest(BaseModel):
    """One generation job. Fields left None take the selected model's variant defaults."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid", frozen=True)

    task: Literal["txt2img", "img2img", "inpaint"] = "txt2img"
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS)
    model: str | None = None
    width: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE)
    height: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE)
    steps: int | None = Field(None, ge=1, le=MAX_STEPS)
    cfg_scale: float | None = Field(None, ge=0.0, le=30.0)
    guidance: float | None = Field(None, ge=0.0, le=30.0, description="FLUX dev distilled guidance")
    seed: int = Field(-1, ge=-1, le=MAX_SEED)
    batch_size: int = Field(1, ge=1, le=MAX_BATCH_SIZE)
    batch_count: int = Field(1, ge=1, le=MAX_BATCH_COUNT)
    strength: float = Field(0.75, ge=0.0, le=1.0, description="denoising strength for img2img/inpaint")
    image: Any = None  # PIL.Image.Image for img2img / inpaint
    mask: Any = None  # PIL.Image.Image for inpaint: white = repaint
    mask_blur: int = Field(4, ge=0, le=64)
    masked_content: Literal["original", "fill", "latent-noise"] = "original"
    inpaint_only_masked: bool = False
    inpaint_padding: int = Field(32, ge=0, le=256)
    resize_mode: Literal["just-resize", "crop-and-resize", "resize-and-fill"] = "just-resize"
    save: bool = True
    preview_every: int = Field(0, ge=0, le=MAX_STEPS, description="decode a preview every N steps (0: never)")
    first_block_cache: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False,
                                            description="First Block Cache threshold (0: off; None: the setting)")
    addons: tuple[AddOn, ...] = Field((), max_length=MAX_ADDONS, description="LoRAs and ControlNet units")
    stages: tuple[Stage, ...] = Field((), max_length=MAX_STAGES, description="passes after the first (hires fix, tiled upscale, refine)")

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_16(cls, v: int | None) -> int | None:
        if v is not None and v % SIZE_MULTIPLE:
            lower = v // SIZE_MULTIPLE * SIZE_MULTIPLE
            raise ValueError(f"must be a multiple of {SIZE_MULTIPLE} (try {max(lower, MIN_SIZE)} or {lower + SIZE_MULTIPLE})")
        return v

    @field_validator("prompt")
    @classmethod
    def _no_negative_marker(cls, v: str) -> str:
        # The infotext format marks the negative prompt with this line start; a prompt cannot carry it.
        if any(line.strip().lower().startswith("negative prompt:") for line in v.splitlines()):
            raise ValueError("a line starts with 'Negative prompt:'; put that text in the negative prompt field")
        return v

    @field_validator("image", "mask")
    @classmethod
    def _pil_image(cls, v: Any) -> Any:
        return _checked_image(v)

    @model_validator(mode="after")
    def _task_inputs(self) -> "GenerationRequest":
        if self.task in ("img2img", "inpaint") and self.image is None:
            raise ValueError(f"image: {self.task} needs an input image")
        if self.task == "inpaint" and self.mask is None:
            raise ValueError("mask: inpaint needs a mask (white where the image is repainted)")
        if self.task == "txt2img" and (self.image is not None or self.mask is not None):
            raise ValueError("image: txt2img takes no input image; use task img2img or inpaint")
        if self.mask is not None and self.image is not None and self.mask.size != self.image.size:
            mw, mh = self.mask.size
            iw, ih = self.image.size
            raise ValueError(f"mask: is {mw}x{mh} but the image is {iw}x{ih}; they must be the same size")
        if self.mask is not None and self.task != "inpaint":
            raise ValueError("mask: only inpaint takes a mask")
        for i, addon in enumerate(self.addons):
            if addon.kind == "controlnet" and addon.active and self.inpaint_only_masked:
                raise ValueError(f"addons[{i}]: ControlNet units take the whole picture; turn 'Only masked' off "
                                 "to use them in inpaint")
            if addon.kind == "controlnet" and addon.active and addon.image is None and self.image is None:
                raise ValueError(f"addons[{i}].image: the unit has no image and {self.task} has no input image "
                                 "to use; give the unit a control image")
        for i, stage in enumerate(self.stages):
            if stage.kind == "hires" and self.task != "txt2img":
                raise ValueError(f"stages[{i}]: hires fix follows a txt2img first pass; {self.task} takes none")
            if stage.kind in ("refine", "tiled_upscale") and self.task == "inpaint":
                raise ValueError(f"stages[{i}]: {stage.kind.replace('_', ' ')} follows txt2img or img2img; inpaint "
                                 "keeps the pixels outside the mask exactly, which refining the whole picture would not")
        for kind, name in (("hires", "hires fix"), ("refine", "refine"), ("tiled_upscale", "tiled upscale")):
            if sum(stage.kind == kind for stage in self.stages) > 1:
                raise ValueError(f"stages: one {name} per job")
        kinds = [stage.kind for stage in self.stages]
        if "tiled_upscale" in kinds and "hires" in kinds[kinds.index("tiled_upscale"):]:
            raise ValueError("stages: the hires fix comes before the tiled upscale")
        if "refine" in kinds and kinds[-1] != "refine":
            raise ValueError("stages: refine comes last (it runs after every batch's other passes)")
        return self

    @property
    def total_images(self) -> int:
        return self.batch_size * self.batch_count


def _checked_image(v: Any) -> Any:
    """A PIL image no larger than the input limit (None passes)."""
    if v is None:
        return v
    from PIL import Image

    if not isinstance(v, Image.Image):
        raise ValueError(f"must be an image, got {type(v).__name__}")
    w, h = v.size
    if not (1 <= w <= MAX_SIZE * 2 and 1 <= h <= MAX_SIZE * 2):
        raise ValueError(f"is {w}x{h}; images up to {MAX_SIZE * 2}x{MAX_SIZE * 2} are accepted")
    return v


UNION_TAGS = {"lora": LoraAddon, "controlnet": ControlNetAddon, "hires": HiresStage, "refine": RefineStage, "tiled_upscale": TiledUpscaleStage}  # kind -> its model


def validate_request(**fields: Any) -> GenerationRequest:
    """Build a request, turning pydantic's errors into one InvalidRequest naming the field."""
    try:
        return GenerationRequest(**fields)
    except ValidationError as exc:
        raise invalid_request_from(exc) from None


def invalid_request_from(exc: ValidationError) -> InvalidRequest:
    err = exc.errors()[0]
    loc = _field_path(err.get("loc", ()))
    msg = err.get("msg", "is invalid")
    msg = msg.removeprefix("Value error, ")
    prefix, colon, rest = msg.partition(":")
    if colon and re.fullmatch(r"[\w\[\]\.]+", prefix):  # "field: what is wrong", from a model's own check
        loc = f"{loc}.{prefix}" if loc else prefix
        msg = rest.strip()
    if err.get("type") == "extra_forbidden":
        tag = next((part for part in err.get("loc", ()) if part in UNION_TAGS), None)
        model = UNION_TAGS.get(tag, GenerationRequest)
        allowed = ", ".join(sorted(model.model_fields))
        msg = f"is not a request field (allowed: {allowed})"
    elif err.get("type") == "string_too_long":
        msg = f"is too long: at most {MAX_PROMPT_CHARS:,} characters are accepted"
    elif err.get("type") in ("greater_than_equal", "less_than_equal") and loc in GenerationRequest.model_fields:
        low, high = _field_range(loc)
        msg = f"{err.get('input')!r} is out of range: allowed {low}..{high}"
    return InvalidRequest(loc or "request", msg)


def _field_range(name: str) -> tuple[object, object]:
    low = high = None
    for meta in GenerationRequest.model_fields[name].metadata:
        low = getattr(meta, "ge", low)
        high = getattr(meta, "le", high)
    return low, high


def _field_path(loc) -> str:
    """("addons", 0, "weight") -> "addons[0].weight", as a user reads it."""
    out = ""
    for part in loc:
        if part == "__root__":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in UNION_TAGS and out.endswith("]"):  # pydantic's union tag, not a field
            continue
        else:
            out += f".{part}" if out else str(part)
    return out
