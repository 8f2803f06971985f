"""Peak memory of the tiled upscale as the output grows: 1024 -> 2048 -> 4096 px on the FLUX demo model.

  .venv/bin/python bench/upscale_memory.py [--tile 512] [--steps 2] [--sizes 1024 2048 4096]

Each figure is the peak RSS of a fresh process (so one size's allocations never count for another): the
engine's tiled upscale stage (one job: a picture half the size upscaled 2x with Lanczos, then img2img over
tiles of --tile px), and, for contrast, raw diffusers' img2img over the whole picture at once, which
grows with the pixels (it is only run up to 2048 px: at 4096 px its attention alone needs tens of GiB).
The ratio column is each peak over the tiled 1024 px one: flat memory is a ratio near 1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
DEMO = "easel-demo-shapes-flux"
PROMPT = "a red circle on a blue background"
RAW_LIMIT = 2048


def source(size: int):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size // 2, size // 2), (40, 60, 200))
    ImageDraw.Draw(image).ellipse((size // 8, size // 8, size * 3 // 8, size * 3 // 8), fill=(220, 40, 40))
    return image


def run_tiled(size: int, tile: int, steps: int) -> dict:
    import tempfile

    from app.engine.engine import Engine
    from app.generation.request import validate_request
    from app.settings import PROJECT_ROOT, Settings

    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Settings(models_dir=PROJECT_ROOT / "models" / "demo", outputs_dir=Path(tmp), device="cpu",
                                 demo_models=False, settings_file=Path(tmp) / "s.json", hf_cache=Path(tmp) / "hf"))
        stage = {"kind": "tiled_upscale", "scale": 2, "tile_width": tile, "tile_height": tile, "overlap": 64,
                 "strength": 0.5}
        request = validate_request(task="img2img", image=source(size), strength=0, prompt=PROMPT, model=DEMO,
                                   steps=steps, seed=1, save=False, stages=[stage])
        started = time.perf_counter()
        result = engine.generate(request, timeout=3600)
        seconds = time.perf_counter() - started
        engine.close()
    assert result.images[0].size == (size, size), result.images[0].size
    return {"seconds": seconds}


def run_raw(size: int, tile: int, steps: int) -> dict:
    import torch
    from diffusers import FluxImg2ImgPipeline

    pipe = FluxImg2ImgPipeline.from_pretrained(str(ROOT / "models" / "demo" / DEMO), torch_dtype=torch.float32)
    picture = source(size).resize((size, size))
    started = time.perf_counter()
    with torch.inference_mode():
        pipe(prompt=PROMPT, image=picture, strength=0.5, num_inference_steps=steps, width=size, height=size,
             generator=torch.Generator().manual_seed(1), guidance_scale=3.5)
    return {"seconds": time.perf_counter() - started}


RUNNERS = {"tiled": run_tiled, "raw": run_raw}


def measure(kind: str, size: int, tile: int, steps: int) -> dict:
    """One run in a fresh process: its peak RSS (MiB) and seconds."""
    out = subprocess.run([sys.executable, __file__, "--one", kind, str(size), "--tile", str(tile), "--steps",
                          str(steps)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--one", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        figures = RUNNERS[a.one[0]](int(a.one[1]), a.tile, a.steps)
        figures["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
        return
    print(f"tiled upscale on {DEMO}: tiles of {a.tile} px, overlap 64, {a.steps} steps at strength 0.5, CPU")
    print(f"{'what':<34}{'peak RSS':>12}{'ratio':>8}{'seconds':>10}")
    base = None
    for kind in ("tiled", "raw"):
        for size in a.sizes:
            if kind == "raw" and size > RAW_LIMIT:
                continue
            figures = measure(kind, size, a.tile, a.steps)
            base = base or figures["peak_mib"]
            label = (f"Easel tiled upscale -> {size} px" if kind == "tiled"
                     else f"raw diffusers img2img at {size} px")
            print(f"{label:<34}{figures['peak_mib']:>9.0f} MiB{figures['peak_mib'] / base:>8.2f}"
                  f"{figures['seconds']:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
