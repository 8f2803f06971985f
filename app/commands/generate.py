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


def generate(settings, args) -> int:
    from app.engine.factory import build_engine
    from app.generation.request import validate_request

    task = args.task or ("inpaint" if args.mask else "img2img" if args.image else "txt2img")
    image = _open_image(args.image, "image") if args.image else None
    mask = _open_image(args.mask, "mask") if args.mask else None
    request = validate_request(
        task=task, prompt=args.prompt, negative_prompt=args.negative_prompt, model=args.model, width=args.width,
        height=args.height, steps=args.steps, cfg_scale=args.cfg, guidance=args.guidance, seed=args.seed,
        batch_size=args.batch_size, batch_count=args.batch_count, strength=args.strength, image=image, mask=mask,
        mask_blur=args.mask_blur, resize_mode=args.resize_mode, save=args.save, stages=_hires_stages(args))
    engine = build_engine(settings)  # the extensions act here as in the web UI and the API
    try:
        job = engine.submit(request)
        last = None
        for p in job.events():
            if p.total_steps and (p.batch, p.stage_index, p.step) != last:
                last = (p.batch, p.stage_index, p.step)
                print(f"\r  {p.where}    ", end="", file=sys.stderr)
        print(file=sys.stderr)
        result = job.result()
    finally:
        engine.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for i, text in enumerate(result.infotexts):
        where = result.paths[i] if i < len(result.paths) else "(not saved)"
        print(where)
        print(text)
        print()
    print(f"{len(result.images)} image(s) in {result.seconds:.2f} s with {result.model}", file=sys.stderr)
    return 0
