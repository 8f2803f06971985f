"""What the demo LoRAs train on: captions with a new colour, and latents the shipped decoder draws it from.

The shipped VAE's encoder only ever saw the six base colours: it maps purple to latents that decode
green. Its decoder, though, can draw purple from latents it was never given. So the trainer fits a copy
of the encoder with the decoder frozen (on new-colour pictures mixed with ordinary ones), encodes the
new-colour pictures with it, and refines each posterior mean a few steps against the decoder: a decoder
inversion, started where the fitted encoder puts it. Ordinary pictures keep the shipped encoder's
latents, so the LoRA sees base captions exactly as the base model learnt them. Nothing of the VAE is
saved: the LoRA is the only thing that changes.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable

import numpy as np
import torch

from app.demo.shapes import COLOURS, SHAPES, SPECS, ShapeSpec, draw, judge, PALETTE, to_tensor
from app.demo.train_lora_config import LatentStage
from app.demo.train_vae import LatentPool, _vae_loss, encode_pool

Log = Callable[[str], None]


def new_colour_specs(colour: str) -> tuple[tuple[ShapeSpec, ...], tuple[ShapeSpec, ...]]:
    """(every shape in `colour` on each base background, every base-coloured shape on `colour`)."""
    return (tuple(ShapeSpec(shape, colour, bg) for shape in SHAPES for bg in COLOURS),
            tuple(ShapeSpec(shape, fg, colour) for shape in SHAPES for fg in COLOURS))


def sample_new_specs(colour: str, n: int, rng: np.random.Generator, background_fraction: float) -> list[ShapeSpec]:
    shapes_in, on_colour = new_colour_specs(colour)
    as_background = rng.random(n) < background_fraction
    return [on_colour[rng.integers(len(on_colour))] if b else shapes_in[rng.integers(len(shapes_in))]
            for b in as_background]


def _decoded(vae: Any, z: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return ((vae.decode(z).sample.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).cpu().numpy()


def judged_right(vae: Any, z: torch.Tensor, specs: list[ShapeSpec]) -> int:
    """How many of the latents `z` decode to pictures the judge (reading the new colours too) passes."""
    return sum(all(judge(picture, spec, PALETTE)) for picture, spec in zip(_decoded(vae, z), specs))


def fit_encoder(vae: Any, colour: str, stage: LatentStage, size: int, device: torch.device, seed: int,
                log: Log) -> Any:
    """A copy of `vae` whose encoder is fitted (decoder frozen) to pictures with `colour` and ordinary ones."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    fitted = copy.deepcopy(vae).to(device).requires_grad_(False)
    fitted.encoder.requires_grad_(True)
    params = [p for p in fitted.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=stage.fit_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, stage.fit_steps))
    start, losses = time.perf_counter(), []
    for step in range(stage.fit_steps):
        half = stage.fit_batch // 2
        specs = sample_new_specs(colour, half, rng, stage.new_background_fraction)
        specs += [SPECS[i] for i in rng.integers(len(SPECS), size=stage.fit_batch - half)]
        x = to_tensor([draw(s, size, rng) for s in specs]).to(device)
        loss = _vae_loss(fitted, x, gen, 1e-6)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    fitted.eval().requires_grad_(False)
    if losses:
        log(f"[latents] encoder copy fitted: {stage.fit_steps} steps, loss {np.mean(losses[:10]):.4f} -> "
            f"{np.mean(losses[-10:]):.4f}, {time.perf_counter() - start:.1f}s")
    return fitted


def invert(vae: Any, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, steps: int, lr: float,
           gen: torch.Generator) -> torch.Tensor:
    """Posterior means refined so that samples around them decode to `x` (the decoder stays as it is)."""
    m = mean.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([m], lr=lr)
    for _ in range(steps):
        z = m + std * torch.randn(m.shape, generator=gen).to(m.device)
        loss = torch.nn.functional.mse_loss(vae.decode(z).sample, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return m.detach()


def encode_new_colour(vae: Any, fitted: Any, colour: str, stage: LatentStage, size: int, count: int,
                      index: dict[str, int], device: torch.device, seed: int) -> dict[str, Any]:
    """`count` new-colour pictures at `size`: refined posterior means and stds (fp16), caption indices,
    and how many decode right before and after the refinement."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    means, stds, idxs, before, after = [], [], [], 0, 0
    for first in range(0, count, stage.chunk):
        specs = sample_new_specs(colour, min(stage.chunk, count - first), rng, stage.new_background_fraction)
        x = to_tensor([draw(s, size, rng) for s in specs]).to(device)
        with torch.no_grad():
            post = fitted.encode(x).latent_dist
        before += judged_right(vae, post.mean, specs)
        mean = invert(vae, x, post.mean, post.std, stage.invert_steps, stage.invert_lr, gen)
        after += judged_right(vae, mean, specs)
        means.append(mean.half())
        stds.append(post.std.half())
        idxs.append(torch.tensor([index[s.caption] for s in specs]))
    return {"mean": torch.cat(means), "std": torch.cat(stds), "idx": torch.cat(idxs),
            "right_before": before, "right_after": after}


def build_pool(vae: Any, colour: str, stage: LatentStage, sizes: tuple[int, ...], captions: list[str],
               device: torch.device, seed: int, log: Log) -> tuple[LatentPool, dict[str, Any]]:
    """The LoRA's latent pool at each size: new-colour pictures beside ordinary ones (base and left/right
    captions), normalised by the shipped VAE's own shift and scaling factors."""
    start = time.perf_counter()
    vae = vae.to(device).eval().requires_grad_(False)
    index = {c: i for i, c in enumerate(captions)}
    ordinary, _ = encode_pool(vae, stage.ordinary, sizes, captions, stage.side_fraction, device, seed, log)
    fitted = fit_encoder(vae, colour, stage, min(sizes), device, seed + 1, log)
    means, stds, idxs, report = {}, {}, {}, {"sizes": {}}
    for k, (size, count) in enumerate(zip(sizes, stage.new)):
        new = encode_new_colour(vae, fitted, colour, stage, size, count, index, device, seed + 2 + k)
        means[size] = torch.cat([ordinary.mean[size], new["mean"].to(ordinary.mean[size].device)])
        stds[size] = torch.cat([ordinary.std[size], new["std"].to(ordinary.std[size].device)])
        idxs[size] = torch.cat([ordinary.caption_idx[size], new["idx"]])
        report["sizes"][size] = {"new": count, "ordinary": len(ordinary.caption_idx[size]),
                                 "decoded_right_fitted": new["right_before"] / max(1, count),
                                 "decoded_right_refined": new["right_after"] / max(1, count)}
        log(f"[latents] {count} {colour} pictures at {size}px: decoded right {new['right_before']}/{count} "
            f"from the fitted encoder, {new['right_after']}/{count} after {stage.invert_steps} refining steps")
    report["seconds"] = time.perf_counter() - start
    pool = LatentPool(means, stds, idxs, shift=float(vae.config.shift_factor), scale=float(vae.config.scaling_factor))
    return pool, report
