"""Engine overhead against a bare diffusers call, on the same tiny model, prompt, seed and size.

  .venv/bin/python bench/engine_overhead.py [--runs 7] [--sizes 256 512] [--steps 4]

Alternates engine and bare runs in one process and prints each median and the ratio, then times a cold
`python -m app generate` (a new process: imports, catalog scan, load, one image) and its peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--models-dir", type=Path, default=None)
    a = ap.parse_args()

    import torch
    from diffusers import FluxPipeline

    from app.demo.build import FLUX_DEMO, FLUX_MAX_SEQUENCE_LENGTH, demo_root, ensure_demo_models
    from app.engine.engine import Engine
    from app.generation.request import validate_request
    from app.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="easel-bench-"))
    models = a.models_dir or tmp / "models"
    ensure_demo_models(models)
    folder = demo_root(models) / FLUX_DEMO
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, model {folder.name}")

    bare = FluxPipeline.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True)
    bare.set_progress_bar_config(disable=True)
    engine = Engine(Settings(models_dir=models, outputs_dir=tmp / "outputs", device="cpu", settings_file=tmp / "s.json"))
    prompt = "a red circle on a blue background"

    for size in a.sizes:
        def run_bare():
            with torch.inference_mode():
                bare(prompt=prompt, height=size, width=size, num_inference_steps=a.steps, guidance_scale=0.0,
                     max_sequence_length=FLUX_MAX_SEQUENCE_LENGTH, generator=[torch.Generator("cpu").manual_seed(1)],
                     output_type="pil")

        req = validate_request(prompt=prompt, model=FLUX_DEMO, width=size, height=size, steps=a.steps, seed=1, save=False)

        def run_engine():
            engine.generate(req)

        run_bare(); run_engine()  # warm-up: first load, allocator
        t_bare, t_engine = [], []
        for _ in range(a.runs):
            for fn, sink in ((run_engine, t_engine), (run_bare, t_bare)):
                t = time.perf_counter(); fn(); sink.append(time.perf_counter() - t)
        mb, me = statistics.median(t_bare), statistics.median(t_engine)
        print(f"{size}px {a.steps} steps: bare diffusers {mb * 1000:7.1f} ms  engine {me * 1000:7.1f} ms  "
              f"ratio engine/bare {me / mb:5.3f}  (median of {a.runs})")
    engine.close()

    cmd = [sys.executable, "-m", "app", "generate", "--prompt", prompt, "--models-dir", str(models),
           "--outputs-dir", str(tmp / "outputs"), "--width", "256", "--height", "256", "--steps", str(a.steps),
           "--device", "cpu"]
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"cold `python -m app generate` 256px: {wall:.2f} s wall, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
