"""`python -m app generate`: one request through the engine, PNGs written, paths and infotexts printed."""

from __future__ import annotations

import sys

from app.errors import InvalidRequest


def _open_image(path, field: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except FileNotFoundError:
        raise InvalidRequest(field, f"{path} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidRequest(field, f"{path} is not a readable image ({exc})") from None


def _hires_stages(args) -> list[dict]:
    """--hires-scale / --hires-resize as the request's hires stage ([] when neither is given)."""
    if args.hires_scale is None and not args.hires_resize:
        return []
    stage = dict(kind="hires", upscaler=args.hires_upscaler, steps=args.hires_steps, strength=args.hires_denoise)
    if args.hires_scale is not None:
        stage["scale"] = args.hires_scale
    if args.hires_resize:
        width, _, height = args.hires_resize.lower().partition("x")
        if not (width.isdigit() and height.isdigit()):
            raise InvalidRequest("hires-resize", f"{args.hires_resize!r} is not WIDTHxHEIGHT (e.g. 1024x1536)")
        stage.update(resize_x=int(width), resize_y=int(height))
    return [stage]


def _tiled_upscale_stages(args) -> list[dict]:
    """--upscale and its options as the request's tiled upscale stage ([] without --upscale)."""
    if args.upscale is None:
        return []
    return [dict(kind="tiled_upscale", scale=args.upscale, upscaler=args.upscale_upscaler, tile_width=args.upscale_tile,
                 tile_height=args.upscale_tile, overlap=args.upscale_overlap, strength=args.upscale_denoise)]


def _outpaint_fields(args, image) -> dict:
    """--outpaint SIDES:PIXELS as the inpaint request's canvas, mask and size."""
    from app.generation.outpaint import Outpaint, outpaint_fields

    sides, _, pixels = args.outpaint.partition(":")
    if image is None:
        raise InvalidRequest("outpaint", "needs --image, the picture to extend")
    if not pixels.isdigit():
        raise InvalidRequest("outpaint", f"{args.outpaint!r} is not SIDES:PIXELS (e.g. right:128 or left,right:64)")
    return outpaint_fields(image, Outpaint.towards(sides.split(","), int(pixels), args.outpaint_feather))


CONTROLNET_KEYS = ("model", "image", "mask", "module", "weight", "guidance_start", "guidance_end", "control_mode",
                   "resize_mode", "pixel_perfect", "processor_res", "threshold_a", "threshold_b", "control_type",
                   "save_detected_map")
_CONTROLNET_IMAGES = ("image", "mask")


def _controlnet_units(specs) -> list[dict]:
    """Each --controlnet KEY=VALUE,... as a unit (image and mask are file paths; without image, the job's
    --image is the control picture). The unit's fields are checked with the request."""
    units = []
    for i, spec in enumerate(specs or ()):
        unit: dict = {"kind": "controlnet"}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, eq, value = part.partition("=")
            key = key.strip().replace("-", "_")
            if not eq or key not in CONTROLNET_KEYS:
                raise InvalidRequest(f"controlnet[{i}]", f"{part!r} is not KEY=VALUE with a key of: "
                                                         f"{', '.join(CONTROLNET_KEYS)}")
            value = value.strip()
            if key in _CONTROLNET_IMAGES:
                unit[key] = _open_image(value, f"controlnet[{i}].{key}")
            elif key in ("pixel_perfect", "save_detected_map"):
                unit[key] = value.lower() in ("1", "true", "yes", "on")
            else:
                unit[key] = value
        if "model" not in unit:
            raise InvalidRequest(f"controlnet[{i}].model", "each --controlnet names its model: model=NAME,...")
        units.append(unit)
    return units


def generate(settings, args) -> int:
    from app.engine.factory import build_engine
    from app.generation.request import validate_request

    task = args.task or ("inpaint" if args.mask or args.outpaint else "img2img" if args.image else "txt2img")
    image = _open_image(args.image, "image") if args.image else None
    fields = dict(
        task=task, prompt=args.prompt, negative_prompt=args.negative_prompt, model=args.model, width=args.width,
        height=args.height, steps=args.steps, cfg_scale=args.cfg, guidance=args.guidance, seed=args.seed,
        batch_size=args.batch_size, batch_count=args.batch_count, strength=args.strength, image=image,
        mask=_open_image(args.mask, "mask") if args.mask else None, mask_blur=args.mask_blur,
        resize_mode=args.resize_mode, save=args.save, stages=_hires_stages(args) + _tiled_upscale_stages(args),
        addons=_controlnet_units(args.controlnet))
    if args.outpaint:
        fields.update(_outpaint_fields(args, image))
    if args.upscale is not None and task == "img2img":  # the input itself upscaled, as the Upscale tab does
        fields.update(strength=0, width=None, height=None)
    request = validate_request(**fields)
    engine = build_engine(settings)  # the extensions act here as in the web UI and the API
    try:
        job = engine.submit(request)
        last = None
        for p in job.events():
            if p.total_steps and (p.batch, p.stage_index, p.tile, p.step) != last:
                last = (p.batch, p.stage_index, p.tile, p.step)
                print(f"\r  {p.where}    ", end="", file=sys.stderr)
        print(file=sys.stderr)
        result = job.result()
    finally:
        engine.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for i, image in enumerate(result.extra_images):  # ControlNet's detected maps
        path = engine.save_extra(image, task="controlnet", infotext="") if args.save else None
        print(f"detected map {i}: {path or '(not saved)'}")
    for i, text in enumerate(result.infotexts):
        where = result.paths[i] if i < len(result.paths) else "(not saved)"
        print(where)
        print(text)
        print()
    print(f"{len(result.images)} image(s) in {result.seconds:.2f} s with {result.model}", file=sys.stderr)
    return 0
