"""sd-webui-controlnet's own routes, at its paths (/controlnet/..., beside /sdapi/v1, behind the same auth):
version, model_list, module_list, control_types, settings and detect, in the shapes its clients read.

Models are listed as the extension lists them, "name [hash]" (a request may give either form). The
control types and their preprocessors are the extension's (app.controlnet.preprocess); a type's
models are those the catalog knows read it, or whose name says it, as the extension filters by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter

from app.api.context import ApiContext
from app.api.images import decode_image, encode_png
from app.api.schemas import ControlNetDetectRequest, ControlNetDetectResponse
from app.errors import InvalidRequest
from app.generation.request import MAX_PROCESSOR_RES, MIN_PROCESSOR_RES

CONTROLNET_PREFIX = "/controlnet"
API_VERSION = 2
NO_MODEL = "None"  # the extension's first choice of every type's model list
MAX_DETECT_IMAGES = 32
# A control type of the extension's UI -> the control types (app.controlnet.layouts) of the models it
# lists; a type not here lists the models of its own name, lower-cased.
TYPE_MODELS = {"Canny": ("canny",), "Depth": ("depth",), "Lineart": ("lineart",), "OpenPose": ("pose",),
               "Recolor": ("gray",), "Tile": ("tile", "blur")}
# Words in a model's name that put it under a type, beside the type's own name (the extension's aliases).
TYPE_WORDS = {"OpenPose": ("densepose",), "Tile": ("blur",)}


def controlnet_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix=CONTROLNET_PREFIX, tags=["controlnet"])

    @router.get("/version")
    def version() -> dict[str, int]:
        """The version of sd-webui-controlnet's API that Easel serves."""
        return {"version": API_VERSION}

    @router.get("/model_list")
    def model_list(update: bool = True) -> dict[str, list[str]]:
        """ControlNet models as "name [hash]"; update (the extension's default): scan the folders again."""
        from app.addons.controlnet import model_choices

        return {"model_list": model_choices(ctx.engine.catalog(refresh=update), ctx.hash_cache)}

    @router.get("/module_list")
    def module_list(alias_names: bool = False) -> dict[str, Any]:
        """Preprocessors in the extension's order (alias_names: the labels its UI shows), with their sliders."""
        from app.controlnet.preprocess import list_preprocessors

        named = [(p.label if alias_names else p.name, p) for p in list_preprocessors()]
        return {"module_list": [name for name, _ in named],
                "module_detail": {name: p.module_detail() for name, p in named}}

    @router.get("/control_types")
    def control_types() -> dict[str, Any]:
        """Each control type's preprocessors (labels) and models, with the ones the extension's UI selects."""
        from app.addons.controlnet import controlnet_files, listed_name
        from app.controlnet.preprocess import CONTROL_TYPES

        listed = [(listed_name(f, ctx.hash_cache), f) for f in controlnet_files(ctx.engine.catalog())]
        return {"control_types": {name: _control_type(kind, listed) for name, kind in CONTROL_TYPES.items()}}

    @router.get("/settings")
    def settings() -> dict[str, Any]:
        return {"control_net_unit_count": ctx.settings.controlnet_units}

    @router.post("/detect", response_model=ControlNetDetectResponse)
    def detect(body: ControlNetDetectRequest) -> dict[str, Any]:
        """The preprocessor's map of each image, at the image's size, as a job's unit would make it."""
        return {"images": _detect(ctx, body), "info": "Success"}

    return router


def _control_type(kind, listed: list[tuple[str, Any]]) -> dict[str, Any]:
    if kind.name == "All":
        models = [NO_MODEL, *(name for name, _ in listed)]
        return {"module_list": list(kind.module_labels), "model_list": models, "default_option": "none",
                "default_model": NO_MODEL}
    models = [NO_MODEL, *(name for name, found in listed if _reads(kind.name, found))]
    return {"module_list": list(kind.module_labels), "model_list": models, "default_option": kind.default_label,
            "default_model": models[1] if len(models) > 1 else NO_MODEL}


def _reads(type_name: str, found) -> bool:
    """Whether a ControlNet file belongs under a control type: by what it reads, else by its name."""
    from app.addons.controlnet import controlnet_name

    if set(found.control_types) & set(TYPE_MODELS.get(type_name, (type_name.lower(),))):
        return True
    name = controlnet_name(found).lower()
    return any(word in name for word in (type_name.lower(), *TYPE_WORDS.get(type_name, ())))


@dataclass(frozen=True)
class _DetectUnit:
    """The settings of a unit that `detect_map` reads: a detect request has no model and no job size
    (the map is fitted back to the image's own size)."""

    module: str
    processor_res: int | None
    threshold_a: float | None
    threshold_b: float | None
    pixel_perfect: bool = False
    resize_mode: str = "just-resize"


def _detect(ctx: ApiContext, body: ControlNetDetectRequest) -> list[str]:
    from app.addons.controlnet import detect_map
    from app.controlnet.preprocess import preprocessor

    spec = preprocessor(body.controlnet_module, field="controlnet_module")
    annotators = ctx.settings.models_dir / "annotators"
    missing = spec.missing_files(annotators)
    if missing:
        raise InvalidRequest("controlnet_module", f"the {spec.name} preprocessor needs its weights: put "
                                                  + "; and ".join(missing))
    field = "controlnet_images" if body.controlnet_images and not body.controlnet_input_images \
        else "controlnet_input_images"
    sources = body.controlnet_input_images or body.controlnet_images or []
    if not sources:
        raise InvalidRequest(field, "no image given: send one or more base64 images")
    if len(sources) > MAX_DETECT_IMAGES:
        raise InvalidRequest(field, f"{len(sources)} images: at most {MAX_DETECT_IMAGES} per request")
    res = body.controlnet_processor_res  # out of the slider's range: the default, as the extension resets it
    unit = _DetectUnit(spec.name, int(res) if MIN_PROCESSOR_RES <= res <= MAX_PROCESSOR_RES else None,
                       _setting(body.controlnet_threshold_a), _setting(body.controlnet_threshold_b))
    images = [decode_image(value, f"{field}[{i}]") for i, value in enumerate(sources)]
    return [encode_png(detect_map(unit, image, image.width, image.height, annotators)) for image in images]


def _setting(value: float) -> float | None:
    return None if value == -1 else value
