"""What the demo ControlNets train on: shapes anywhere in the picture, their canny edge maps, and the
captions that do not say where the shape is.

The base demo models draw "a red square on a blue background" in the middle. The ControlNet sees the
edge map of the same picture with the shape somewhere else (left, right, higher, lower) and must put it
there, so what it learns is the one thing the caption leaves out: where the edges are. Edge maps are made
by Easel's own canny preprocessor at the training size, as a unit with processor resolution = the job's
size makes them, and VAE-encoded as the pipelines encode control pictures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from app.demo.shapes import SPECS, ShapeSpec, draw_at, to_tensor

Log = Callable[[str], None]

# Where a training shape may sit (fractions of the side) and its half-extent: clear of the border.
CENTRE_X, CENTRE_Y, RADIUS = (0.2, 0.8), (0.3, 0.7), (0.16, 0.22)


def sample_placements(n: int, rng: np.random.Generator) -> list[tuple[ShapeSpec, float, float, float]]:
    """`n` (spec, centre x, centre y, radius): any base caption, the shape anywhere in the training range."""
    specs = [SPECS[i] for i in rng.integers(len(SPECS), size=n)]
    xs, ys, rs = rng.uniform(*CENTRE_X, n), rng.uniform(*CENTRE_Y, n), rng.uniform(*RADIUS, n)
    return list(zip(specs, xs, ys, rs))


def canny_map(picture, size: int):
    """The edge map a canny unit makes of `picture` at processor resolution `size`."""
    from app.controlnet.preprocess import preprocessor

    return preprocessor("canny").run(picture, resolution=size, threshold_a=None, threshold_b=None,
                                     annotators_dir=Path("models/annotators"))


@dataclass
class ControlPool:
    """Per size: the pictures' posterior means and stds, their edge maps' (both fp16, as the VAE encodes
    them), and each picture's caption index."""

    mean: dict[int, torch.Tensor]
    std: dict[int, torch.Tensor]
    control_mean: dict[int, torch.Tensor]
    control_std: dict[int, torch.Tensor]
    caption_idx: dict[int, torch.Tensor]
    shift: float
    scale: float
    control_shift: float  # what the pipeline subtracts from control latents (SD3's InstantX-style ones: 0)

    def sample(self, size: int, n: int, gen: torch.Generator, device: torch.device):
        """`n` (latents, control latents) drawn from random posteriors at `size`, normalised as the
        pipelines normalise them, and their caption indices."""
        i = torch.randint(len(self.caption_idx[size]), (n,), generator=gen)

        def draw(mean, std, shift):
            eps = torch.randn(mean[size][i].shape, generator=gen)
            z = mean[size][i].float() + std[size][i].float() * eps
            return ((z - shift) * self.scale).to(device)

        return (draw(self.mean, self.std, self.shift), draw(self.control_mean, self.control_std, self.control_shift),
                self.caption_idx[size][i])


@torch.no_grad()
def build_control_pool(vae: Any, counts: tuple[int, ...], sizes: tuple[int, ...], captions: list[str],
                       control_shift: float, seed: int, log: Log, chunk: int = 128) -> ControlPool:
    rng = np.random.default_rng(seed)
    index = {c: i for i, c in enumerate(captions)}
    out: dict[str, dict[int, torch.Tensor]] = {k: {} for k in ("mean", "std", "cmean", "cstd", "idx")}
    start = time.perf_counter()
    for size, count in zip(sizes, counts):
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in out}
        for first in range(0, count, chunk):
            placed = sample_placements(min(chunk, count - first), rng)
            pictures = [draw_at(spec, size, x, y, r) for spec, x, y, r in placed]
            post = vae.encode(to_tensor(pictures)).latent_dist
            control = vae.encode(to_tensor([canny_map(p, size) for p in pictures])).latent_dist
            parts["mean"].append(post.mean.half())
            parts["std"].append(post.std.half())
            parts["cmean"].append(control.mean.half())
            parts["cstd"].append(control.std.half())
            parts["idx"].append(torch.tensor([index[spec.caption] for spec, *_ in placed]))
        for k in out:
            out[k][size] = torch.cat(parts[k])
        log(f"[pool] {count} pictures and edge maps at {size}px encoded {time.perf_counter() - start:.1f}s")
    return ControlPool(out["mean"], out["std"], out["cmean"], out["cstd"], out["idx"],
                       shift=float(vae.config.shift_factor or 0.0), scale=float(vae.config.scaling_factor),
                       control_shift=control_shift)
