"""Train the shapes demo models: `python -m app.demo.train --out models/demo [--device cuda|cpu]
[--seed 0] [--config full|smoke]`.

In order: the VAE, a pool of encoded latents, the FLUX transformer, the SD3 transformer; then each
model is saved as an fp16 diffusers folder (with the frozen random text encoders it was trained with),
loaded back the way Easel loads models, evaluated by the pixel judge, given the defaults that
evaluated best in its easel.json, and only then renamed into place. The stages run one after another
on purpose: on a 2-core CPU two of them side by side are each many times slower.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

from app.demo.build import build_atomically
from app.demo.shapes import CAPTIONS, SIDE_CAPTIONS, SIDE_SPECS, SPECS
from app.demo.train_config import CONFIGS, TrainConfig
from app.demo.train_eval import choose_defaults, evaluate, rate, spread
from app.demo.train_flow import encode_captions, train_transformer
from app.demo.train_models import (MAX_SEQUENCE_LENGTH, build_flux_pipeline, build_sd3_pipeline, build_vae,
                                   describe)
from app.demo.train_report import folder_bytes, markdown, stage_summary
from app.demo.train_vae import encode_pool, train_vae

Log = Callable[[str], None]

MODELS = {
    "flux": {"name": "easel-demo-shapes-flux", "label": "Easel demo · shapes (FLUX)", "variant": "flux-schnell",
             "build": build_flux_pipeline},
    "sd3": {"name": "easel-demo-shapes-sd3", "label": "Easel demo · shapes (SD3.5)", "variant": "sd3.5-large",
            "build": build_sd3_pipeline},
}


def _print(line: str) -> None:
    print(line, flush=True)


def train_all(out_dir: Path | str, config: TrainConfig | str = "full", device: str | torch.device = "cpu",
              seed: int = 0, log: Log = _print) -> dict[str, Any]:
    """Train and save both demo models under `out_dir`; return the report (also printed via `log`).

    The report holds, per stage, the per-step losses and timing, and per model its folder, defaults
    and evaluation.
    """
    cfg = CONFIGS[config] if isinstance(config, str) else config
    device = torch.device(device)
    out_dir = Path(out_dir)
    start = time.perf_counter()
    captions = [*CAPTIONS, *SIDE_CAPTIONS, ""]

    torch.manual_seed(seed)
    vae = build_vae(cfg.vae.widths)
    stages: dict[str, Any] = {"vae": train_vae(vae, cfg.vae, cfg.sizes, cfg.side_fraction, device, seed, log)}
    pool, stages["pool"] = encode_pool(vae, cfg.pool, cfg.sizes, captions, cfg.side_fraction, device, seed + 1, log)
    vae.register_to_config(shift_factor=pool.shift, scaling_factor=pool.scale)

    models = {}
    for k, (family, spec) in enumerate(MODELS.items()):
        pipe = spec["build"](vae, seed + 10 * (k + 1))
        pipe.to(device)
        table = encode_captions(pipe, family, captions, MAX_SEQUENCE_LENGTH, device)
        stages[family] = train_transformer(pipe, family, pool, table, getattr(cfg, family), cfg.sizes, device,
                                           seed + 2 + k, log)
        # saved as soon as it is trained: a later stage that fails does not lose it
        models[family] = _save_and_evaluate(pipe, family, out_dir, cfg, device, log)
        del pipe
    del pool

    report = {"config": cfg.name, "seed": seed, "device": str(device), "sizes": list(cfg.sizes),
              "seconds": time.perf_counter() - start,
              "stages": {name: stage_summary(st) for name, st in stages.items()}, "models": models}
    text = markdown(report)
    for family, m in models.items():
        _write_json(Path(m["folder"]) / "training_report.json",
                    {**{k: v for k, v in report.items() if k != "models"}, "model": m})
    log(text)
    # The caller (tests, tuning) gets the full loss histories; the saved reports keep curves.
    report["stages"] = stages
    report["summary"] = text
    return report


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def _save_fp16(pipe: Any, folder: Path) -> None:
    """Save an fp16 copy of `pipe` (the trained one stays fp32 and where it is)."""
    parts = {name: copy.deepcopy(m).to("cpu", torch.float16) if isinstance(m, torch.nn.Module) else m
             for name, m in pipe.components.items()}
    type(pipe)(**parts).save_pretrained(folder, safe_serialization=True)


def _save_and_evaluate(pipe: Any, family: str, out_dir: Path, cfg: TrainConfig, device: torch.device,
                       log: Log) -> dict[str, Any]:
    """Save into a temporary sibling, evaluate what was saved, write easel.json, rename into place."""
    spec = MODELS[family]
    folder = out_dir / spec["name"]

    def save_and_judge(tmp: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        _save_fp16(pipe, tmp)
        loaded = type(pipe).from_pretrained(str(tmp), dtype=torch.float32, local_files_only=True).to(device)
        loaded.set_progress_bar_config(disable=True)
        result = _evaluate_model(loaded, family, cfg, log)
        defaults = {"steps": result["steps"], "width": max(cfg.sizes), "height": max(cfg.sizes),
                    "cfg_scale": result["cfg_scale"]}
        meta = {"name": spec["name"], "label": spec["label"], "demo": True, "family": family,
                "variant": spec["variant"], "max_sequence_length": MAX_SEQUENCE_LENGTH, "defaults": defaults}
        _write_json(tmp / "easel.json", meta)
        return result, defaults

    result, defaults = build_atomically(folder, save_and_judge)
    info = {"name": spec["name"], "folder": str(folder), "defaults": defaults, "bytes": folder_bytes(folder),
            "parameters": describe(pipe), **{k: v for k, v in result.items() if k not in ("steps", "cfg_scale")}}
    log(f"[{family}] saved {folder} ({info['bytes'] / 1e6:.1f} MB)")
    return info


def _evaluate_model(pipe: Any, family: str, cfg: TrainConfig, log: Log) -> dict[str, Any]:
    """Pick the defaults (SD3: by a sweep), then measure adherence with them at every training size."""
    ev, hi = cfg.eval, max(cfg.sizes)
    subset = spread(SPECS, ev.sweep_caption_limit)
    result: dict[str, Any] = {}
    if family == "sd3":
        (steps, cfg_scale), result["sweep"] = choose_defaults(pipe, family, ev.sd3_candidates, subset, hi,
                                                              MAX_SEQUENCE_LENGTH, ev.batch)
        no_cfg = evaluate(pipe, family, subset, (0,), (hi,), steps, 1.0, MAX_SEQUENCE_LENGTH, ev.batch)
        result["without_cfg"] = rate(no_cfg, hi)
        log(f"[{family}] sweep " + ", ".join(f"{s['steps']}/{s['cfg_scale']}: {s['both']:.2f}" for s in result["sweep"])
            + f"; chosen {steps} steps cfg {cfg_scale}; without CFG {result['without_cfg']:.2f}")
    else:
        steps, cfg_scale = ev.flux_steps, 1.0
    result["evaluation"] = evaluate(pipe, family, spread(SPECS, ev.caption_limit), ev.seeds, cfg.sizes, steps,
                                    cfg_scale, MAX_SEQUENCE_LENGTH, ev.batch)
    result["sides"] = evaluate(pipe, family, spread(SIDE_SPECS, ev.sweep_caption_limit), (0,), (hi,), steps,
                               cfg_scale, MAX_SEQUENCE_LENGTH, ev.batch)
    for size in cfg.sizes:
        log(f"[{family}] adherence {size}px {rate(result['evaluation'], size):.3f} "
            f"(shape type {rate(result['evaluation'], size, 'shape_type'):.3f})")
    log(f"[{family}] left/right {hi}px {rate(result['sides'], hi):.3f}")
    return {**result, "steps": steps, "cfg_scale": cfg_scale}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m app.demo.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("models/demo"), help="folder to write the two models into")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", choices=sorted(CONFIGS), default="full")
    args = p.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    train_all(args.out, args.config, device, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
