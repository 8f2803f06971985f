"""Command line: `python -m app models`, `python -m app generate ...`, `python -m app demo build`.

Flags use A1111/Forge names where those exist (--lowvram, --medvram, --force-fp16, --no-half, --models-dir).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from app.errors import EaselError


def _common_flags() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("models and memory")
    g.add_argument("--models-dir", type=Path, help="models folder (ComfyUI or A1111 layout; default ./models)")
    g.add_argument("--outputs-dir", type=Path, help="where images are saved (default ./outputs)")
    g.add_argument("--extra-model-paths", type=Path, help="ComfyUI-style extra_model_paths.yaml")
    g.add_argument("--extensions-dir", type=Path, help="the extensions folder (default ./extensions)")
    g.add_argument("--settings-file", type=Path, help="settings JSON (default ./settings.json)")
    g.add_argument("--device", help="cuda, cuda:N, mps or cpu (default: the best available)")
    g.add_argument("--lowvram", action="store_true", default=None, help="sequential/group offload: slowest, least VRAM")
    g.add_argument("--medvram", action="store_true", default=None, help="model CPU offload: one component on the GPU at a time")
    g.add_argument("--force-fp16", action="store_true", default=None, help="fp16 weights even where bf16 is supported")
    g.add_argument("--no-half", action="store_true", default=None, help="fp32 weights")
    g.add_argument("--offload", choices=["auto", "none", "model", "group", "sequential"], help="override the planned offload")
    g.add_argument("--max-loaded-models", type=int, help="models kept loaded at once (default 1)")
    g.add_argument("--attention", choices=["auto", "native", "flash", "flash3", "sage", "xformers"],
                   help="attention kernel (default auto: FlashAttention 3 on Hopper, 2 on other NVIDIA GPUs when "
                        "installed, else PyTorch's)")
    g.add_argument("--compile", action="store_true", default=None,
                   help="compile the transformer's repeated blocks (torch.compile): the first image takes the "
                        "compile time, later ones run faster; a new size compiles again")
    g.add_argument("--first-block-cache", type=float, metavar="THRESHOLD",
                   help="skip most of the transformer on steps that change little (0.08-0.12 for FLUX.1 dev; "
                        "jobs under 10 steps run without it; default 0: off)")
    g.add_argument("--no-demo", dest="demo_models", action="store_false", default=None,
                   help="do not build the embedded demo models")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common_flags()
    parser = argparse.ArgumentParser(prog="python -m app", description="Easel: local FLUX.1 and SD3.5 image generation")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("models", parents=[common], help="list the models found, their status and memory plan")

    gen = sub.add_parser("generate", parents=[common], help="generate images and save them to the outputs folder")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative-prompt", default="")
    gen.add_argument("--model", help="model name (see `python -m app models`); default: the first ready one")
    gen.add_argument("--task", choices=["txt2img", "img2img", "inpaint"], default=None,
                     help="default: txt2img, or img2img/inpaint when --image/--mask are given")
    gen.add_argument("--image", type=Path, help="input image for img2img / inpaint")
    gen.add_argument("--mask", type=Path, help="inpaint mask: white where the image is repainted")
    gen.add_argument("--strength", type=float, default=0.75, help="denoising strength 0..1 (default 0.75)")
    gen.add_argument("--steps", type=int)
    gen.add_argument("--cfg", type=float, help="CFG scale (SD3.5; FLUX: true CFG when > 1)")
    gen.add_argument("--guidance", type=float, help="FLUX dev distilled guidance (default 3.5)")
    gen.add_argument("--width", type=int)
    gen.add_argument("--height", type=int)
    gen.add_argument("--seed", type=int, default=-1)
    gen.add_argument("--batch-size", type=int, default=1)
    gen.add_argument("--batch-count", type=int, default=1)
    gen.add_argument("--mask-blur", type=int, default=4)
    gen.add_argument("--resize-mode", choices=["just-resize", "crop-and-resize", "resize-and-fill"], default="just-resize")
    hr = gen.add_argument_group("hires fix (txt2img): upscale the first pass and denoise it again")
    hr.add_argument("--hires-scale", type=float, help="turn the hires fix on, upscaling by this factor (A1111's hr_scale)")
    hr.add_argument("--hires-resize", metavar="WxH", help="turn the hires fix on, to this size (cover, then crop)")
    hr.add_argument("--hires-upscaler", default="", help="Lanczos, an upscaler file's name or a Latent mode "
                                                        "(default: the model's: FLUX Lanczos, SD3.5 Latent)")
    hr.add_argument("--hires-steps", type=int, default=0, help="hires pass steps (default 0: the first pass's)")
    hr.add_argument("--hires-denoise", type=float, default=0.7, help="hires denoising strength (default 0.7)")
    up = gen.add_argument_group("tiled upscale (A1111's SD upscale): upscale, then denoise again tile by tile")
    up.add_argument("--upscale", type=float, metavar="SCALE", help="turn it on, by this factor; with --image the "
                    "input itself is upscaled (no img2img pass over the whole picture)")
    up.add_argument("--upscale-upscaler", default="", help="Lanczos (default) or an upscaler file's name")
    up.add_argument("--upscale-tile", type=int, default=0, help="tile size in px (default: the job's size)")
    up.add_argument("--upscale-overlap", type=int, default=64, help="tile overlap in px (default 64)")
    up.add_argument("--upscale-denoise", type=float, default=0.3, help="the tiles' denoising strength (default 0.3)")
    cn = gen.add_argument_group("ControlNet: units that steer the composition by a control picture")
    cn.add_argument("--controlnet", action="append", metavar="KEY=VALUE,...",
                    help="a unit, e.g. model=demo-canny-flux,image=edges.png,module=canny,weight=0.8 "
                         "(repeat for several; keys as the API's unit fields; no image: --image is used)")
    op = gen.add_argument_group("outpaint: extend --image on chosen sides and inpaint the new area")
    op.add_argument("--outpaint", metavar="SIDES:PIXELS", help="e.g. right:128 or left,right:64")
    op.add_argument("--outpaint-feather", type=int, default=16, help="mask fade into the new area, px (default 16)")
    gen.add_argument("--no-save", dest="save", action="store_false", help="do not write files (prints infotexts only)")

    web = sub.add_parser("webui", parents=[common], help="serve the web UI (the default command)")
    w = web.add_argument_group("serving")
    w.add_argument("--listen", action="store_true", help="serve on all network interfaces (0.0.0.0), not only this machine")
    w.add_argument("--port", type=int, default=7860)
    w.add_argument("--share", action="store_true", help="ask Gradio for a public link (needs the internet)")
    w.add_argument("--gradio-auth", help="user:password[,user2:password2] for the web UI")
    w.add_argument("--gradio-auth-path", type=Path, help="file of user:password pairs (lines or commas)")
    w.add_argument("--preset", help="preset selected at start (a name from presets/*.json)")
    w.add_argument("--api", action="store_true", help="also serve the A1111-compatible API under /sdapi/v1")
    w.add_argument("--nowebui", action="store_true", help="serve the API alone (port 7861 unless --port)")
    w.add_argument("--api-auth", help="user:password[,user2:password2]: HTTP Basic auth on every API route "
                                      "(default: the web UI's login, when it has one)")
    w.add_argument("--api-without-auth", action="store_true",
                   help="serve the API without a login even though the web UI has one")
    w.add_argument("--ui-without-auth", action="store_true",
                   help="serve the web UI without a login even though the API has one")
    w.add_argument("--cors-allow-origins", default="", help="comma-separated origins allowed to call the API")
    w.add_argument("--enable-insecure-extension-access", action="store_true",
                   help="allow installing/updating/removing extensions from the UI even with --listen/--share")

    from app.extensions.cli import add_ext_parser

    add_ext_parser(sub, [common])

    demo = sub.add_parser("demo", parents=[common], help="the embedded demo models")
    demo.add_argument("action", choices=["build"], help="build: (re)build the demo models into the models folder")
    return parser


def settings_from(args: argparse.Namespace):
    from app.settings import load_settings

    keys = ("models_dir", "outputs_dir", "extra_model_paths", "extensions_dir", "settings_file", "device", "lowvram", "medvram",
            "force_fp16", "no_half", "offload", "max_loaded_models", "demo_models", "first_block_cache", "compile", "attention")
    return load_settings({k: getattr(args, k, None) for k in keys})


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("--"):
        argv = ["webui", *argv]  # `python -m app [--listen ...]` serves the web UI
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "filelock", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # e.g. "image processor needs torchvision"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        settings = settings_from(args)
        if args.command == "models":
            from app.commands.models import list_models

            return list_models(settings)
        if args.command == "generate":
            from app.commands.generate import generate

            return generate(settings, args)
        if args.command == "webui":
            return serve(settings, args)
        if args.command == "ext":
            from app.extensions.cli import ext_command

            return ext_command(settings, args)
        if args.command == "demo":
            from app.demo.build import rebuild_demo_models

            for folder in rebuild_demo_models(settings.models_dir):
                print(folder)
            return 0
    except EaselError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # bad flag combinations (e.g. --lowvram with --medvram)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 1


def serve(settings, args) -> int:
    from app.api.auth import parse_auth_pairs
    from app.ui.launch import parse_gradio_auth

    cors = [o.strip() for o in args.cors_allow_origins.split(",") if o.strip()]
    host = "0.0.0.0" if args.listen else "127.0.0.1"
    ui_auth = parse_gradio_auth(args.gradio_auth, args.gradio_auth_path)
    api_auth = parse_auth_pairs(args.api_auth) if args.api_auth else {}
    if args.nowebui:
        from app.api.server import serve_api
        from app.doors import resolve_doors

        doors = resolve_doors(ui=False, api=True, ui_auth=[] if args.api_without_auth else ui_auth,
                              api_auth=api_auth, host=host)  # --gradio-auth alone guards the API too
        serve_api(settings, host, args.port if args.port != 7860 else 7861, auth=doors.api_auth, cors=cors)
        return 0
    from app.ui.launch import launch_webui

    launch_webui(settings, host=host, port=args.port, share=args.share, auth=ui_auth, api=args.api,
                 api_auth=api_auth, cors=cors, preset=args.preset,
                 insecure_extensions=args.enable_insecure_extension_access,
                 api_without_auth=args.api_without_auth, ui_without_auth=args.ui_without_auth)
    return 0
