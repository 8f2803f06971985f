"""Easel's speed tactics on a CUDA GPU at the released sizes (random weights), each against eager bf16.

  python bench/gpu_speed.py [--runs 3] [--size 1024] [--cases flux-schnell flux-dev sd3.5-large]
  python bench/gpu_speed.py --smoke      # the same code path on the CPU over the shipped shapes demo

For each case, on one pipeline built as bench/gpu_engine.py builds it: eager bf16 (diffusers' default
attention), then each tactic as Easel applies it (app/runtime): the attention kernel `--attention auto`
picks, First Block Cache at 0.08 (many-step cases only), regional compile (its compile time apart),
fp8 weights with layerwise casting, and model offload under a 12 GB cap
(`torch.cuda.set_per_process_memory_fraction`). Printed per tactic: s/image (median), ms/step, peak
VRAM, and how far its picture is from eager's for the same seed (PSNR in dB over the decoded pixels;
inf: identical). GGUF formats are not built here: quantizing 12 B random weights to GGUF takes longer
than the budget of a lent GPU.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PROMPT = "a lighthouse on a cliff at dusk, dramatic sky"
CAP_GB = 12


def psnr(a, b) -> float:
    import numpy as np

    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


class Case:
    """One pipeline, its call and its eager picture."""

    def __init__(self, name: str, pipe, family_name: str, variant: str, size: int, runs: int, device: str):
        import torch

        from app.families import family_for
        from app.generation.request import validate_request

        family = family_for(family_name)
        self.name, self.pipe, self.runs, self.device = name, pipe, runs, device
        self.cuda = device == "cuda"
        request = validate_request(prompt=PROMPT, width=size, height=size, seed=1, save=False)
        self.kwargs = family.call_kwargs(request, family.defaults_for(variant))
        self.kwargs.update(height=size, width=size, output_type="np", num_images_per_prompt=1)
        if not self.cuda:
            self.kwargs["max_sequence_length"] = min(self.kwargs.get("max_sequence_length", 16), 16)
        self.steps = self.kwargs["num_inference_steps"]
        self.torch = torch
        self.eager = None

    def call(self):
        with self.torch.inference_mode():
            return self.pipe(**self.kwargs, generator=[self.torch.Generator("cpu").manual_seed(1)]).images[0]

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def measure(self, tactic: str, first_note: str = "") -> None:
        self.sync()
        started = time.perf_counter()
        picture = self.call()  # warm-up (and the compile, for compiled blocks)
        self.sync()
        first = time.perf_counter() - started
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(self.runs):
            self.sync()
            started = time.perf_counter()
            picture = self.call()
            self.sync()
            times.append(time.perf_counter() - started)
        seconds = statistics.median(times)
        peak = self.torch.cuda.max_memory_allocated() / 2**30 if self.cuda else float("nan")
        if self.eager is None:
            self.eager = picture
        note = f"  first call {first:.1f} s{first_note}" if first_note else ""
        print(f"{self.name:<13} {tactic:<26} {seconds:7.3f} s/image  {seconds / self.steps * 1000:7.1f} ms/step  "
              f"peak {peak:5.1f} GiB  PSNR vs eager {psnr(picture, self.eager):6.1f} dB{note}", flush=True)


def run_case(case: Case, device_info) -> None:
    from app.runtime.attention import choose_attention, set_attention
    from app.runtime.block_cache import MIN_STEPS, set_block_cache
    from app.runtime.compile import compile_repeated_blocks

    transformer = case.pipe.transformer
    case.measure("eager bf16")
    choice = choose_attention("auto", device_info)
    if choice.name != "native":
        set_attention(transformer, choice.name)
        case.measure(f"attention {choice.name}")
    if case.steps >= MIN_STEPS and set_block_cache(transformer, 0.08, case.steps):
        case.measure("first block cache 0.08")
        set_block_cache(transformer, 0.0, case.steps)
    compile_repeated_blocks(transformer)
    case.measure("regional compile", first_note=" (compiles)")


def run_fp8(case: Case) -> None:
    import torch

    case.pipe.transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.bfloat16)
    case.measure("fp8 layerwise casting")


def run_capped(case: Case) -> None:
    import torch

    total = torch.cuda.get_device_properties(0).total_memory
    case.pipe.to("cpu")
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(min(1.0, CAP_GB * 2**30 / total))
    case.pipe.enable_model_cpu_offload()
    try:
        case.measure(f"model offload, {CAP_GB} GB cap")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)


def builders(smoke: bool):
    if smoke:
        return {"flux-schnell": lambda: (_demo("flux"), "flux", "flux-schnell"),
                "sd3.5-large": lambda: (_demo("sd3"), "sd3", "sd3.5-large")}
    from gpu_engine import flux_pipe, sd3_pipe

    def flux(guidance):
        pipe, variant = flux_pipe(guidance)
        return pipe, "flux", variant

    return {"flux-schnell": lambda: flux(False), "flux-dev": lambda: flux(True),
            "sd3.5-large": lambda: (sd3_pipe()[0], "sd3", "sd3.5-large")}


def _demo(family: str):
    """The shipped shapes demo (a few MB) as a diffusers pipeline on the CPU, for --smoke."""
    import diffusers
    import torch

    folder = ROOT / "models" / "demo" / f"easel-demo-shapes-{family}"
    cls = diffusers.FluxPipeline if family == "flux" else diffusers.StableDiffusion3Pipeline
    pipe = cls.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--cases", nargs="+", default=None)
    ap.add_argument("--smoke", action="store_true", help="CPU, the shipped demo models, 128 px, 1 run")
    a = ap.parse_args()

    import torch

    from app.runtime.devices import detect_device

    device = "cpu" if a.smoke else "cuda"
    info = detect_device(device)
    size, runs = (128, 1) if a.smoke else (a.size, a.runs)
    build = builders(a.smoke)
    print(f"torch {torch.__version__}; {info.describe()}", flush=True)
    for name in a.cases or list(build):
        try:
            case = Case(name, *build[name](), size, runs, device)
            run_case(case, info)
            if not a.smoke:
                case = Case(name, *build[name](), size, runs, device)  # fresh weights, uncompiled
                run_fp8(case)
                case = Case(name, *build[name](), size, runs, device)
                run_capped(case)
        except Exception as exc:  # report and go on to the next case
            import traceback

            traceback.print_exc()
            print(f"{name}: FAILED {type(exc).__name__}: {exc}", flush=True)
        case = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
