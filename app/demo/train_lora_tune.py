"""Tuning a demo LoRA through the model's own sampler, judged by the colours the frozen decoder draws.

The flow objective alone leaves the new colour short of its target: the shipped decoder draws purple
only from unusual latents (the refined ones in the pool are larger and more spread than the base
colours'), and a model that predicts their average lands on latents that decode blue or red. This
stage runs the pipeline's few-step Euler sampling from fresh noise with the LoRA in place (gradients
through the last `grad_steps` steps, classifier-free guidance as the model's defaults use it), decodes
with the frozen decoder, and pulls the centre patch to the caption's shape colour and the border ring
to its background. Pictures of base captions can be sampled beside them and pulled to their own colours,
and the flow loss on the pool stays beside it, so the base captions keep their looks.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable

import numpy as np
import torch

from app.demo.shapes import BORDER, PALETTE, ShapeSpec, sample_specs
from app.demo.train_flow import PREDICT, TextTable, sample_sigmas, velocity_losses
from app.demo.train_lora_config import TuneStage
from app.demo.train_lora_data import sample_new_specs
from app.demo.train_vae import LatentPool

Log = Callable[[str], None]

# What each pipeline passes to its scheduler's set_timesteps for `n` steps (FluxPipeline gives sigmas).
TIMESTEP_KWARGS: dict[str, Callable[[int], dict[str, Any]]] = {
    "flux": lambda n: {"sigmas": np.linspace(1.0, 1 / n, n).tolist()},
    "sd3": lambda n: {},
}
SIDE_FRACTION = 0.2  # base-caption pictures with the shape on the left or right, as the control prompt has
CENTRE = 0.09  # half-width of the centre patch pulled to the shape colour, as a fraction of the side


def sampler_sigmas(pipe: Any, family: str, steps: int) -> list[float]:
    """The noise levels the pipeline's own scheduler walks for `steps` steps, ending at 0."""
    scheduler = copy.deepcopy(pipe.scheduler)
    scheduler.set_timesteps(steps, **TIMESTEP_KWARGS[family](steps))
    return [float(s) for s in scheduler.sigmas]


def guided_velocity(pipe: Any, family: str, table: TextTable, x: torch.Tensor, sigma: float, idx: torch.Tensor,
                    cfg: float) -> torch.Tensor:
    """The velocity at `x`, with classifier-free guidance against the empty caption when cfg > 1."""
    predict = PREDICT[family]
    sigmas = torch.full((x.shape[0],), sigma, device=x.device)
    if cfg <= 1:
        return predict(pipe, x, sigmas, table.embeds[idx], table.pooled[idx], table.text_ids)
    both = torch.cat([torch.full_like(idx, table.index_of("")), idx])
    unconditional, conditional = predict(pipe, torch.cat([x, x]), torch.cat([sigmas, sigmas]), table.embeds[both],
                                         table.pooled[both], table.text_ids).chunk(2)
    return unconditional + cfg * (conditional - unconditional)


def sample_latents(pipe: Any, family: str, table: TextTable, noise: torch.Tensor, idx: torch.Tensor,
                   sigmas: list[float], cfg: float, grad_steps: int) -> torch.Tensor:
    """Euler steps from `noise` down `sigmas`; only the last `grad_steps` keep their graph."""
    x = noise
    steps = len(sigmas) - 1
    for i in range(steps):
        with torch.set_grad_enabled(i >= steps - grad_steps):
            x = x + (sigmas[i + 1] - sigmas[i]) * guided_velocity(pipe, family, table, x, sigmas[i], idx, cfg)
    return x


def colour_loss(pictures: torch.Tensor, specs: list[ShapeSpec]) -> torch.Tensor:
    """Mean squared distance (on the [-1, 1] scale) of the centre patch to each shape colour and of the
    border ring to each background colour: the regions the judge reads."""
    n, _, h, w = pictures.shape
    rgb = lambda name: torch.tensor(PALETTE[name], dtype=pictures.dtype) / 127.5 - 1.0
    fg = torch.stack([rgb(s.colour) for s in specs]).to(pictures.device).view(n, 3, 1)
    bg = torch.stack([rgb(s.background) for s in specs]).to(pictures.device).view(n, 3, 1)
    losses = []
    for k, spec in enumerate(specs):
        cx, cy = round(spec.centre(w)[0]), round(spec.centre(h)[1])
        half = max(1, round(CENTRE * min(h, w)))
        centre = pictures[k, :, max(0, cy - half): cy + half, max(0, cx - half): cx + half].flatten(1)
        losses.append(((centre - fg[k]) ** 2).mean())
    b = max(1, round(BORDER * min(h, w)))
    ring = torch.cat([pictures[:, :, :b].flatten(2), pictures[:, :, -b:].flatten(2),
                      pictures[:, :, b:-b, :b].flatten(2), pictures[:, :, b:-b, -b:].flatten(2)], dim=2)
    return torch.stack(losses).mean() + ((ring - bg) ** 2).mean()


def tune_through_sampler(pipe: Any, family: str, pool: LatentPool, table: TextTable, captions: list[str],
                         colour: str, stage: TuneStage, defaults: dict[str, Any], device: torch.device, seed: int,
                         log: Log) -> dict[str, Any]:
    """Tune the LoRA parameters of `pipe.transformer` in place; return the per-step losses and timing."""
    model = pipe.transformer.to(device).train()
    params = [p for name, p in model.named_parameters() if ".lora_" in name]
    for name, p in model.named_parameters():
        p.requires_grad_(".lora_" in name)
    vae = pipe.vae.to(device).requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=stage.lr, weight_decay=0.0)
    rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    index = {c: i for i, c in enumerate(captions)}
    sigmas = sampler_sigmas(pipe, family, defaults["steps"])
    channels = vae.config.latent_channels
    losses, start = [], time.perf_counter()
    for step in range(stage.steps):
        size = stage.sizes[step % len(stage.sizes)]
        latent = size // pipe.vae_scale_factor
        specs = [*sample_new_specs(colour, stage.batch, rng, stage.background_fraction),
                 *sample_specs(stage.ordinary_batch, rng, SIDE_FRACTION)]
        idx = torch.tensor([index[s.caption] for s in specs], device=device)
        noise = torch.randn((len(specs), channels, latent, latent), generator=gen).to(device)
        x0 = sample_latents(pipe, family, table, noise, idx, sigmas, defaults["cfg_scale"], stage.grad_steps)
        pictures = vae.decode(x0 / pool.scale + pool.shift).sample
        loss_colour = colour_loss(pictures, specs)
        z0, pool_idx = pool.sample(size, stage.flow_batch, gen, device)
        pool_idx = pool_idx.to(device)
        sigma = sample_sigmas(stage.flow_batch, gen, 0.1).to(device)
        eps = torch.randn(z0.shape, generator=gen).to(device)
        loss_flow = velocity_losses(pipe, family, z0, sigma, eps, table.embeds[pool_idx], table.pooled[pool_idx],
                                    table.text_ids).mean()
        loss = loss_colour + stage.flow_weight * loss_flow
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append((loss_colour.item(), loss_flow.item()))
        if (step + 1) % stage.log_every == 0 or step + 1 == stage.steps:
            recent = np.array(losses[-stage.log_every:])
            log(f"[{family}] tune step {step + 1}/{stage.steps} colour loss {recent[:, 0].mean():.4f} "
                f"flow loss {recent[:, 1].mean():.4f} {time.perf_counter() - start:.1f}s")
    model.eval().requires_grad_(False)
    seconds = time.perf_counter() - start
    return {"steps": stage.steps, "seconds": seconds, "ms_per_step": 1000 * seconds / max(1, stage.steps),
            "losses": losses}
