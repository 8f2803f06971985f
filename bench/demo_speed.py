"""Time the shipped demo models per image: 64 and 128 px, 4 steps, batch 1 and 8, through the engine.

  .venv/bin/python bench/demo_speed.py [--runs 5]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()

    import torch

    from app.engine.engine import Engine
    from app.generation.request import validate_request
    from app.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="easel-demo-bench-"))
    engine = Engine(Settings(models_dir=ROOT / "models" / "demo", outputs_dir=tmp, device="cpu", demo_models=False,
                             settings_file=tmp / "s.json", max_loaded_models=2))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for model in ("easel-demo-shapes-flux", "easel-demo-shapes-sd3"):
        for size in (64, 128):
            for batch in (1, 8):
                req = validate_request(prompt="a red circle on a blue background", model=model, width=size,
                                       height=size, steps=4, batch_size=batch, seed=1, save=False)
                engine.generate(req)  # warm-up (and load)
                times = []
                for _ in range(a.runs):
                    t = time.perf_counter()
                    engine.generate(req)
                    times.append(time.perf_counter() - t)
                per_image = statistics.median(times) / batch
                print(f"{model:<24} {size:>3}px 4 steps batch {batch}: {per_image * 1000:7.1f} ms per image "
                      f"(median of {a.runs})", flush=True)
    engine.close()


if __name__ == "__main__":
    main()
