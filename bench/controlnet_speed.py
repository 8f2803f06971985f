"""ControlNet cost on the shipped demo models: seconds per job with 0, 1 and 2 canny units through the
engine, beside raw diffusers' ControlNet pipeline with the same model, picture and seed in the same run.

  .venv/bin/python bench/controlnet_speed.py [--family flux|sd3] [--runs 5] [--steps 8] [--size 128]

What the engine adds above diffusers is the preprocessor (canny on the CPU), the unit checks and the
infotext; the ControlNet model is loaded once and kept while the next job uses it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
MODELS = {"flux": "easel-demo-shapes-flux", "sd3": "easel-demo-shapes-sd3"}
PIPELINES = {"flux": "FluxControlNetPipeline", "sd3": "StableDiffusion3ControlNetPipeline"}


def raw_diffusers(family: str, picture, steps: int, size: int, runs: int) -> float:
    """Median seconds of the family's diffusers ControlNet pipeline with the demo ControlNet (canny map
    made once, outside the timing)."""
    import diffusers
    import torch

    from app.controlnet.load import load_controlnet
    from app.controlnet.preprocess import preprocessor

    folder = ROOT / "models" / "demo" / MODELS[family]
    net = load_controlnet(ROOT / "models" / "controlnet" / f"demo-canny-{family}.safetensors", torch.float32)
    pipe = getattr(diffusers, PIPELINES[family]).from_pretrained(str(folder), controlnet=net, dtype=torch.float32,
                                                                 local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    edges = preprocessor("canny").run(picture, resolution=size, threshold_a=None, threshold_b=None,
                                      annotators_dir=ROOT / "models" / "annotators")
    kwargs = {"max_sequence_length": 16, "guidance_scale": 0.0 if family == "flux" else 4.5}

    def once() -> float:
        started = time.perf_counter()
        pipe(prompt="a red square on a blue background", control_image=edges, num_inference_steps=steps,
             height=size, width=size, generator=torch.Generator().manual_seed(1), **kwargs)
        return time.perf_counter() - started

    once()
    return statistics.median(once() for _ in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", choices=sorted(MODELS), default="flux")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    a = ap.parse_args()

    from app.demo.shapes import ShapeSpec, draw_at
    from app.engine.factory import build_engine
    from app.generation.request import ControlNetAddon, validate_request
    from app.settings import Settings

    picture = draw_at(ShapeSpec("square", "red", "blue"), a.size, 0.2, 0.5, 0.18)
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        models.mkdir()
        (models / "demo").symlink_to(ROOT / "models" / "demo", target_is_directory=True)
        (models / "controlnet").symlink_to(ROOT / "models" / "controlnet", target_is_directory=True)
        engine = build_engine(Settings(models_dir=models, outputs_dir=Path(tmp) / "out", device="cpu",
                                       settings_file=Path(tmp) / "s.json", demo_models=False), load_extensions=False)
        unit = ControlNetAddon(model=f"demo-canny-{a.family}", module="canny", image=picture, pixel_perfect=True)

        def run(units) -> float:
            request = validate_request(prompt="a red square on a blue background", model=MODELS[a.family],
                                       steps=a.steps, seed=1, width=a.size, height=a.size, save=False, addons=units)
            started = time.perf_counter()
            engine.generate(request)
            return time.perf_counter() - started

        figures = {}
        for label, units in (("0 units", ()), ("1 unit", (unit,)), ("2 units", (unit, unit))):
            run(units)  # load what this set needs once
            figures[label] = statistics.median(run(units) for _ in range(a.runs))
            print(f"{label}: {figures[label] * 1000:.0f} ms/job, {figures[label] / a.steps * 1000:.1f} ms/step "
                  f"({a.family}, {a.size} px, {a.steps} steps, median of {a.runs})")
        engine.close()
    raw = raw_diffusers(a.family, picture, a.steps, a.size, a.runs)
    print(f"raw diffusers {PIPELINES[a.family]}, 1 ControlNet: {raw * 1000:.0f} ms/job; "
          f"Easel 1 unit / raw = {figures['1 unit'] / raw:.2f}")


if __name__ == "__main__":
    main()
