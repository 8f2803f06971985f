"""Evaluating the shapes demo models by their pixels: does the asked colour come out where it should?

Pictures are generated through the saved folder's pipeline with the arguments Easel itself passes
(FLUX: no guidance unless cfg_scale > 1; SD3: true CFG with an empty negative prompt), one generator
per picture so a result does not depend on how prompts were batched.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch

from app.demo.shapes import ShapeSpec, judge, judge_shape


def spread(specs: Sequence[ShapeSpec], limit: int | None) -> list[ShapeSpec]:
    """`limit` specs evenly spread over `specs` (all of them when limit is None or large)."""
    if limit is None or limit >= len(specs):
        return list(specs)
    step = len(specs) / limit
    return [specs[int(i * step)] for i in range(limit)]


def call_kwargs(family: str, steps: int, cfg_scale: float, max_sequence_length: int) -> dict[str, Any]:
    """Pipeline arguments as Easel's family adapters build them."""
    kwargs: dict[str, Any] = {"num_inference_steps": steps, "max_sequence_length": max_sequence_length}
    if family == "flux":
        kwargs["guidance_scale"] = 0.0
        if cfg_scale > 1.0:
            kwargs.update(true_cfg_scale=cfg_scale, negative_prompt="")
    else:
        kwargs.update(guidance_scale=cfg_scale, negative_prompt="")
    return kwargs


@torch.no_grad()
def generate(pipe: Any, prompts: list[str], size: int, seeds: list[int], kwargs: dict[str, Any]) -> list:
    """One picture per prompt; a list of CPU generators makes the pipeline draw each picture's noise
    from its own seed."""
    gens = [torch.Generator(device="cpu").manual_seed(s) for s in seeds]
    return pipe(prompt=prompts, height=size, width=size, generator=gens, output_type="pil", **kwargs).images


def evaluate(pipe: Any, family: str, specs: Sequence[ShapeSpec], seeds: Sequence[int], sizes: Sequence[int],
             steps: int, cfg_scale: float, max_sequence_length: int, batch: int = 30) -> dict[str, Any]:
    """Colour adherence per size: how many pictures have the right shape colour, background, both,
    and (crudely) the right shape type, out of len(specs) × len(seeds)."""
    kwargs = call_kwargs(family, steps, cfg_scale, max_sequence_length)
    jobs = [(spec, 1000 * seed + k) for seed in seeds for k, spec in enumerate(specs)]
    out: dict[str, Any] = {}
    start = time.perf_counter()
    for size in sizes:
        counts = {"pictures": 0, "shape_colour": 0, "background": 0, "both": 0, "shape_type": 0}
        failures: list[str] = []
        for first in range(0, len(jobs), batch):
            part = jobs[first: first + batch]
            images = generate(pipe, [spec.caption for spec, _ in part], size, [s for _, s in part], kwargs)
            for (spec, noise_seed), image in zip(part, images):
                colour_ok, background_ok = judge(image, spec)
                counts["pictures"] += 1
                counts["shape_colour"] += colour_ok
                counts["background"] += background_ok
                counts["both"] += colour_ok and background_ok
                counts["shape_type"] += judge_shape(image, spec) == spec.shape
                if not (colour_ok and background_ok) and len(failures) < 5:
                    failures.append(f"{spec.caption} (noise seed {noise_seed})")
        out[str(size)] = {**counts, "failures": failures}
    out["seconds"] = time.perf_counter() - start
    return out


def rate(result: dict[str, Any], size: int | str, key: str = "both") -> float:
    r = result[str(size)]
    return r[key] / max(1, r["pictures"])


def choose_defaults(pipe: Any, family: str, candidates: Sequence[tuple[int, float]], specs: Sequence[ShapeSpec],
                    size: int, max_sequence_length: int, batch: int) -> tuple[tuple[int, float], list[dict[str, Any]]]:
    """The (steps, cfg_scale) candidate with the best colour adherence at `size` (ties: fewer steps,
    then the cfg_scale nearest 4), and every candidate's score."""
    scores = []
    for steps, cfg in candidates:
        res = evaluate(pipe, family, specs, (0,), (size,), steps, cfg, max_sequence_length, batch)
        scores.append({"steps": steps, "cfg_scale": cfg, "both": rate(res, size), "seconds": res["seconds"]})
    best = max(scores, key=lambda s: (round(s["both"], 6), -s["steps"], -abs(s["cfg_scale"] - 4.0)))
    return (best["steps"], best["cfg_scale"]), scores
