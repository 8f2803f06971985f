"""Judging a demo LoRA by the pixels it makes through the pipeline's own `load_lora_weights`.

The LoRA file as saved is loaded into a fresh copy of the shipped demo model and pictures are made
with the model's own defaults (easel.json). The judge reads colours with the new colour in its palette,
so a red that turned purple counts as a miss. Figures: the headline prompt's centre read as the new
colour over many seeds, with and without the LoRA; a control prompt of base colours keeping both of
them with the LoRA; base captions with and without it; every new-colour caption with it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from app.demo.shapes import PALETTE, SPECS, ShapeSpec, judge, shape_colour
from app.demo.train_eval import call_kwargs, generate, spread
from app.demo.train_lora_config import LoraEval
from app.demo.train_lora_data import new_colour_specs

Judge = Callable[[Any, ShapeSpec], bool]


def centre_is(image: Any, spec: ShapeSpec) -> bool:
    return shape_colour(image, spec, PALETTE) == spec.colour


def both_right(image: Any, spec: ShapeSpec) -> bool:
    return all(judge(image, spec, PALETTE))


def load_demo(folder: Path, device: torch.device) -> tuple[Any, dict[str, Any]]:
    """The demo pipeline in `folder` as diffusers loads it, in float32, and its easel.json."""
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(str(folder), dtype=torch.float32, local_files_only=True).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe, json.loads((folder / "easel.json").read_text())


def share(pipe: Any, meta: dict[str, Any], specs: Sequence[ShapeSpec], seeds: Sequence[int], size: int,
          verdict: Judge, ev: LoraEval) -> float:
    """The share of (spec, seed) pictures that `verdict` passes, made with the model's defaults."""
    d = meta["defaults"]
    kwargs = call_kwargs(meta["family"], ev.steps or d["steps"], d["cfg_scale"], meta["max_sequence_length"])
    batch = ev.batch
    jobs = [(spec, seed) for spec, seed in zip(specs, seeds)]
    hits = 0
    for first in range(0, len(jobs), batch):
        part = jobs[first: first + batch]
        images = generate(pipe, [s.caption for s, _ in part], size, [seed for _, seed in part], kwargs)
        hits += sum(verdict(image, spec) for (spec, _), image in zip(part, images))
    return hits / max(1, len(jobs))


def figures(pipe: Any, meta: dict[str, Any], colour: str, ev: LoraEval) -> dict[str, float]:
    """Every figure for the pipeline as it is now (with or without a LoRA loaded)."""
    headline, control = ShapeSpec("circle", colour, "white"), ShapeSpec("circle", "red", "blue")
    seeds = list(range(ev.seeds))
    out = {"headline": share(pipe, meta, [headline] * ev.seeds, seeds, ev.size, centre_is, ev),
           "control": share(pipe, meta, [control] * ev.seeds, seeds, ev.size, both_right, ev)}
    for size in ev.also_sizes:
        out[f"headline_{size}"] = share(pipe, meta, [headline] * ev.seeds, seeds, size, centre_is, ev)
    ordinary = spread(SPECS, ev.ordinary_limit)
    out["ordinary"] = share(pipe, meta, ordinary, range(len(ordinary)), ev.size, both_right, ev)
    new = spread([s for group in new_colour_specs(colour) for s in group], ev.new_limit)
    out["new_captions"] = share(pipe, meta, new, range(len(new)), ev.size, both_right, ev)
    return out


def judge_lora(folder: Path, lora_file: Path, colour: str, ev: LoraEval, device: torch.device,
               base: dict[str, float] | None = None) -> dict[str, Any]:
    """Figures for the shipped model in `folder` with `lora_file` loaded, beside its figures without
    (`base`, measured here when not given), and whether the targets are met."""
    start = time.perf_counter()
    pipe, meta = load_demo(folder, device)
    if base is None:
        base = figures(pipe, meta, colour, ev)
    pipe.load_lora_weights(str(lora_file), adapter_name="judged")
    with_lora = figures(pipe, meta, colour, ev)
    met = (with_lora["headline"] >= ev.min_with and base["headline"] <= ev.max_without
           and with_lora["control"] >= ev.min_control)
    return {"with": with_lora, "without": base, "met": met, "seeds": ev.seeds, "size": ev.size,
            "defaults": meta["defaults"], "seconds": time.perf_counter() - start}


def describe(result: dict[str, Any], colour: str) -> str:
    """The judge's figures on one line."""
    w, b, n = result["with"], result["without"], result["seeds"]
    extra = "".join(f", at {k.split('_')[1]}px {w[k]:.0%}" for k in w if k.startswith("headline_"))
    return (f"'a {colour} circle on a white background' {colour} centre: {round(w['headline'] * n)}/{n} seeds with "
            f"the LoRA, {round(b['headline'] * n)}/{n} without ({result['size']}px{extra}); "
            f"'a red circle on a blue background' right {round(w['control'] * n)}/{n} with, "
            f"{round(b['control'] * n)}/{n} without; base captions {w['ordinary']:.0%} with, {b['ordinary']:.0%} "
            f"without; {colour} captions {w['new_captions']:.0%} with, {b['new_captions']:.0%} without; "
            f"targets {'met' if result['met'] else 'NOT met'}")
