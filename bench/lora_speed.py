"""LoRA cost on the shipped FLUX demo model: seconds per step with 0, 1 and 3 LoRAs, and the switch time.

  .venv/bin/python bench/lora_speed.py [--runs 5] [--steps 8] [--size 128]

LoRAs are fused into the weights, so a job with LoRAs should step as fast as one without; the price is
paid once, when the set changes (restore the patched weights, add the new deltas). The LoRAs here are
random rank-8 files on every attention projection, made in a temp models folder beside a link to the
shipped demo model; what is timed is the engine's own path (prompt tags -> resolve -> fuse -> generate).
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
DEMO = "easel-demo-shapes-flux"
PROMPT = "a red circle on a blue background"


def make_loras(models: Path, count: int, rank: int = 8) -> list[str]:
    import torch
    from diffusers import FluxTransformer2DModel
    from safetensors.torch import save_file

    transformer = FluxTransformer2DModel.from_pretrained(str(ROOT / "models/demo" / DEMO / "transformer"))
    (models / "loras").mkdir(parents=True)
    names = []
    for i in range(count):
        g = torch.Generator().manual_seed(i)
        tensors = {}
        for name, module in transformer.named_modules():
            if name.endswith(("attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0")):
                tensors[f"transformer.{name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=g) * 0.01
                tensors[f"transformer.{name}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=g) * 0.01
        save_file(tensors, str(models / "loras" / f"bench-{i}.safetensors"))
        names.append(f"bench-{i}")
    return names


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    a = ap.parse_args()

    from app.engine.factory import build_engine
    from app.generation.request import validate_request
    from app.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        names = make_loras(models, 3)
        (models / "demo").symlink_to(ROOT / "models/demo", target_is_directory=True)
        engine = build_engine(Settings(models_dir=models, outputs_dir=Path(tmp) / "out", device="cpu",
                                       settings_file=Path(tmp) / "s.json"), load_extensions=False)

        def run(tags: str) -> float:
            request = validate_request(prompt=f"{PROMPT} {tags}".strip(), model=DEMO, steps=a.steps, seed=1,
                                       width=a.size, height=a.size, save=False)
            started = time.perf_counter()
            engine.generate(request)
            return time.perf_counter() - started

        sets = {"0 LoRAs": "", "1 LoRA": f"<lora:{names[0]}:1>",
                "3 LoRAs": " ".join(f"<lora:{n}:0.7>" for n in names)}
        run("")  # load the model
        for label, tags in sets.items():
            run(tags)  # fuse this set once; the runs below reuse it
            per_step = statistics.median(run(tags) for _ in range(a.runs)) / a.steps
            print(f"{label}: {per_step * 1000:.1f} ms/step ({a.size} px, {a.steps} steps, median of {a.runs})")
        steady = statistics.median(run(sets["1 LoRA"]) for _ in range(a.runs))
        # alternating the sets: every job restores the patched weights and fuses the other set
        switch = statistics.median(run(sets["3 LoRAs"] if i % 2 else sets["1 LoRA"]) for i in range(a.runs))
        print(f"switching between the 1- and 3-LoRA sets: {(switch - steady) * 1000:.1f} ms per job above a "
              f"steady job ({steady * 1000:.0f} ms), no reload of the base model")
        engine.close()


if __name__ == "__main__":
    main()
