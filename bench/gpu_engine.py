"""Easel's engine on a CUDA GPU at the released model sizes (random weights), against bare diffusers.

  python bench/gpu_engine.py [--runs 3] [--size 1024] [--cases flux-schnell flux-dev sd3.5-large]

Speed does not depend on weight values, so FLUX.1 (12 B) and SD3.5 large (8 B) transformers, T5-XXL,
CLIP and the 16-channel VAE are built with random bf16 weights straight on the GPU. For each case the
same pipeline object runs (a) as a bare diffusers call and (b) through Easel's job runner (progress
callback, cancel checks, CPU generators, infotext), alternating; the median seconds and the ratio are
printed, with peak GPU memory. Also prints the memory plan Easel picks for each released variant here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEVICE = "cuda"  # "meta" checks that every released config builds, without memory or a GPU
sys.path.insert(0, str(ROOT))


def released_config(variant: str, component: str) -> dict:
    from app.families.single_file import released_config as shipped

    return {k: v for k, v in shipped(variant, component).items() if not k.startswith("_")}


def build_on_gpu(factory, dtype):
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(DEVICE):
            return factory()
    finally:
        torch.set_default_dtype(old)


def flux_pipe(guidance: bool):
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from app.demo.tokenizers import build_demo_t5_tokenizer, load_clip_tokenizer

    variant = "flux-dev" if guidance else "flux-schnell"
    bf16 = torch.bfloat16
    tr = build_on_gpu(lambda: FluxTransformer2DModel(**released_config(variant, "transformer")), bf16)
    vae = build_on_gpu(lambda: AutoencoderKL(**released_config(variant, "vae")), bf16)
    clip = build_on_gpu(lambda: CLIPTextModel(CLIPTextConfig(**released_config(variant, "text_encoder"))), bf16)
    t5 = build_on_gpu(lambda: T5EncoderModel(T5Config(**released_config(variant, "text_encoder_2"))), bf16)
    sched = FlowMatchEulerDiscreteScheduler(**released_config(variant, "scheduler"))
    pipe = FluxPipeline(scheduler=sched, vae=vae, text_encoder=clip, tokenizer=load_clip_tokenizer(),
                        text_encoder_2=t5, tokenizer_2=build_demo_t5_tokenizer(), transformer=tr)
    pipe.set_progress_bar_config(disable=True)
    return pipe, variant


def sd3_pipe():
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from app.demo.tokenizers import build_demo_t5_tokenizer, load_clip_tokenizer

    v, bf16 = "sd3.5-large", torch.bfloat16
    tr = build_on_gpu(lambda: SD3Transformer2DModel(**released_config(v, "transformer")), bf16)
    vae = build_on_gpu(lambda: AutoencoderKL(**released_config(v, "vae")), bf16)
    c1 = build_on_gpu(lambda: CLIPTextModelWithProjection(CLIPTextConfig(**released_config(v, "text_encoder"))), bf16)
    c2 = build_on_gpu(lambda: CLIPTextModelWithProjection(CLIPTextConfig(**released_config(v, "text_encoder_2"))), bf16)
    t5 = build_on_gpu(lambda: T5EncoderModel(T5Config(**released_config(v, "text_encoder_3"))), bf16)
    pipe = StableDiffusion3Pipeline(
        transformer=tr, scheduler=FlowMatchEulerDiscreteScheduler(**released_config(v, "scheduler")), vae=vae,
        text_encoder=c1, tokenizer=load_clip_tokenizer(), text_encoder_2=c2, tokenizer_2=load_clip_tokenizer("!"),
        text_encoder_3=t5, tokenizer_3=build_demo_t5_tokenizer())
    pipe.set_progress_bar_config(disable=True)
    return pipe, v


def compare(name, pipe, family_name, variant, size, runs):
    import torch

    from app.catalog.entry import ModelEntry
    from app.engine.jobs import Job
    from app.engine.manager import LoadedModel
    from app.engine.runner import run_job
    from app.families import family_for
    from app.generation.request import validate_request
    from app.runtime.devices import detect_device
    from app.runtime.memory import MemoryPlan

    family = family_for(family_name)
    entry = ModelEntry(name=name, family=family_name, variant=variant, format="diffusers", path=Path("/nonexistent"),
                       size_bytes=0, status="ready")
    plan = MemoryPlan("bfloat16", "gpu", False, False, False, False, 0, device_kind="cuda")
    loaded = LoadedModel(entry=entry, family=family, plan=plan, device=detect_device(), model_hash="0000000000",
                         load_seconds=0.0, pipes={"txt2img": pipe})
    request = validate_request(prompt="a lighthouse on a cliff at dusk, dramatic sky", width=size, height=size,
                               seed=1, save=False)
    defaults = family.defaults_for(variant)
    kwargs = family.call_kwargs(request, defaults)
    kwargs.update(height=size, width=size, output_type="pil", num_images_per_prompt=1)

    def bare():
        with torch.inference_mode():
            pipe(**kwargs, generator=[torch.Generator("cpu").manual_seed(1)])

    def engine():
        run_job(Job(request), loaded, None)

    bare(); engine()
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    tb, te = [], []
    for _ in range(runs):
        for fn, sink in ((engine, te), (bare, tb)):
            torch.cuda.synchronize(); t = time.perf_counter(); fn(); torch.cuda.synchronize()
            sink.append(time.perf_counter() - t)
    mb, me = statistics.median(tb), statistics.median(te)
    peak = torch.cuda.max_memory_allocated() / 2**30
    steps = kwargs["num_inference_steps"]
    print(f"{name:<16} {size}px {steps:>2} steps  bare {mb:7.3f} s  engine {me:7.3f} s  ratio {me / mb:6.4f}  "
          f"({mb / steps * 1000:6.1f} ms/step)  peak {peak:5.1f} GiB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--cases", nargs="+", default=["flux-schnell", "flux-dev", "sd3.5-large"],
                    choices=["flux-schnell", "flux-dev", "sd3.5-large"])
    a = ap.parse_args()

    import torch

    from app.runtime.devices import detect_device
    from app.runtime.memory import ModelFootprint, plan_memory

    dev = detect_device()
    print(f"torch {torch.__version__}; {dev.describe()}", flush=True)
    for v in ("flux-schnell", "flux-dev", "sd3.5-large", "sd3.5-medium"):
        print(f"plan {v:<13} {plan_memory(dev, ModelFootprint.for_variant(v)).describe()}", flush=True)
    builders = {"flux-schnell": (lambda: flux_pipe(False), "flux"), "flux-dev": (lambda: flux_pipe(True), "flux"),
                "sd3.5-large": (sd3_pipe, "sd3")}
    for name in a.cases:
        build, fam = builders[name]
        try:
            pipe, variant = build()
            compare(name, pipe, fam, variant, a.size, a.runs)
        except Exception as exc:  # report and go on to the next case
            import traceback

            traceback.print_exc()
            print(f"{name}: FAILED {type(exc).__name__}: {exc}", flush=True)
        pipe = None
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
