"""Resident memory over many jobs with previews: it should stay flat (jobs keep only their newest
progress and preview, finished jobs let go of their images once delivered).

  .venv/bin/python bench/job_memory.py [--jobs 200] [--every 25] [--size 64] [--steps 2] [--model NAME]

Runs the jobs one after another as the API does (submit, wait, take the result, release), through the
engine on the shipped demo model, and prints RSS (MiB) every `--every` jobs.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--model", default="easel-demo-shapes-flux")
    a = ap.parse_args()

    from app.engine.engine import Engine
    from app.generation.request import validate_request
    from app.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="easel-job-memory-"))
    engine = Engine(Settings(models_dir=ROOT / "models", outputs_dir=tmp, device="cpu", settings_file=tmp / "s.json"))
    request = validate_request(prompt="a red circle on a blue background", model=a.model, width=a.size,
                               height=a.size, steps=a.steps, preview_every=1, save=False)
    try:
        engine.generate(request)  # load the model before the first figure
        gc.collect()
        start = rss_mib()
        print(f"{a.jobs} jobs, {a.model}, {a.size} px, {a.steps} steps, preview every step")
        print(f"{'jobs':>6} {'RSS MiB':>9} {'vs start':>9} {'jobs/s':>7}")
        print(f"{0:>6} {start:>9.1f} {0.0:>+9.1f} {'':>7}")
        started = time.perf_counter()
        for i in range(1, a.jobs + 1):
            job = engine.submit(request.model_copy(update={"seed": i}), source="bench")
            job.result()
            job.release()
            if i % a.every == 0:
                gc.collect()
                now = rss_mib()
                rate = i / (time.perf_counter() - started)
                print(f"{i:>6} {now:>9.1f} {now - start:>+9.1f} {rate:>7.1f}")
    finally:
        engine.close()


if __name__ == "__main__":
    main()
