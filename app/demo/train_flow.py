"""Rectified-flow training of a FLUX or SD3 transformer on pre-encoded latents.

Everything that crosses the boundary to inference goes through the pipeline's own code, because a
mismatch there silently ruins a model that trained fine: prompts are embedded with `encode_prompt` at
the `max_sequence_length` written to easel.json, FLUX latents are packed with `_pack_latents` and
positioned with `_prepare_latent_image_ids`, and timesteps are passed in the unit each pipeline passes
(FLUX: sigma in [0, 1], its transformer multiplies by 1000; SD3: sigma × 1000, the scheduler's timestep).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from app.demo.train_config import FlowStage
from app.demo.train_vae import LatentPool

Log = Callable[[str], None]


@dataclass(frozen=True)
class TextTable:
    """Embeddings of every training caption (and of "", the dropped caption), computed once."""

    captions: tuple[str, ...]
    embeds: torch.Tensor  # (n, tokens, dim)
    pooled: torch.Tensor  # (n, dim)
    text_ids: torch.Tensor | None  # FLUX's (tokens, 3) position ids; None for SD3

    def index_of(self, caption: str) -> int:
        return self.captions.index(caption)


def encode_captions(pipe: Any, family: str, captions: list[str], max_sequence_length: int,
                    device: torch.device, chunk: int = 64) -> TextTable:
    """Embed `captions` with the pipeline's own `encode_prompt`, exactly as inference will."""
    embeds, pooled, text_ids = [], [], None
    with torch.no_grad():
        for i in range(0, len(captions), chunk):
            part = captions[i: i + chunk]
            if family == "flux":
                e, p, text_ids = pipe.encode_prompt(prompt=part, prompt_2=None, device=device,
                                                    max_sequence_length=max_sequence_length)
            else:
                e, _, p, _ = pipe.encode_prompt(prompt=part, prompt_2=None, prompt_3=None, device=device,
                                                do_classifier_free_guidance=False,
                                                max_sequence_length=max_sequence_length)
            embeds.append(e.float())
            pooled.append(p.float())
    return TextTable(tuple(captions), torch.cat(embeds), torch.cat(pooled), text_ids)


def flux_predict(pipe: Any, x_t: torch.Tensor, sigma: torch.Tensor, embeds: torch.Tensor,
                 pooled: torch.Tensor, text_ids: torch.Tensor | None) -> torch.Tensor:
    """The transformer's velocity for latents `x_t` (b, 16, h, w), packed and unpacked as FluxPipeline does."""
    b, c, h, w = x_t.shape
    packed = pipe._pack_latents(x_t, b, c, h, w)
    img_ids = pipe._prepare_latent_image_ids(b, h // 2, w // 2, x_t.device, x_t.dtype)
    out = pipe.transformer(hidden_states=packed, timestep=sigma, guidance=None, pooled_projections=pooled,
                           encoder_hidden_states=embeds, txt_ids=text_ids, img_ids=img_ids,
                           return_dict=False)[0]
    f = pipe.vae_scale_factor
    return pipe._unpack_latents(out, h * f, w * f, f)


def sd3_predict(pipe: Any, x_t: torch.Tensor, sigma: torch.Tensor, embeds: torch.Tensor,
                pooled: torch.Tensor, text_ids: torch.Tensor | None) -> torch.Tensor:
    """The transformer's velocity for latents `x_t`; SD3's pipeline passes the scheduler timestep, sigma × 1000."""
    return pipe.transformer(hidden_states=x_t, timestep=sigma * 1000, encoder_hidden_states=embeds,
                            pooled_projections=pooled, return_dict=False)[0]


PREDICT = {"flux": flux_predict, "sd3": sd3_predict}


def velocity_losses(pipe: Any, family: str, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor,
                    embeds: torch.Tensor, pooled: torch.Tensor, text_ids: torch.Tensor | None) -> torch.Tensor:
    """The rectified-flow objective per latent: the squared error of the predicted velocity noise − x0
    at x_t = (1 − σ)·x0 + σ·noise, averaged over each latent (shape (b,))."""
    s = sigma.view(-1, 1, 1, 1)
    pred = PREDICT[family](pipe, (1.0 - s) * x0 + s * noise, sigma, embeds, pooled, text_ids)
    return ((pred.float() - (noise - x0)) ** 2).mean(dim=(1, 2, 3))


def sample_sigmas(n: int, gen: torch.Generator, uniform_fraction: float) -> torch.Tensor:
    """Logit-normal(0, 1) noise levels (most weight mid-way, where the picture is decided), with a
    `uniform_fraction` drawn uniformly so the ends of the schedule are trained too."""
    logit_normal = torch.sigmoid(torch.randn(n, generator=gen))
    uniform = torch.rand(n, generator=gen)
    pick = torch.rand(n, generator=gen) < uniform_fraction
    return torch.where(pick, uniform, logit_normal)


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class Ema:
    """Exponential moving average of a module's weights, with the usual warm-up so early steps count."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(module).requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for s, p in zip(self.shadow.parameters(), module.parameters()):
            s.lerp_(p, 1.0 - d)


def train_transformer(pipe: Any, family: str, pool: LatentPool, table: TextTable, stage: FlowStage,
                      sizes: tuple[int, ...], device: torch.device, seed: int, log: Log) -> dict[str, Any]:
    """Train `pipe.transformer` in place; at the end its weights are replaced by their EMA.

    Each step picks one resolution (the larger with probability `stage.hi_fraction`, at a batch scaled
    to the same pixel count), resamples latents from the pool, drops captions to "" at
    `stage.caption_dropout`, and regresses the velocity noise − x0 at x_t = (1 − σ)·x0 + σ·noise.
    Returns the per-step losses and timing.
    """
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    model = pipe.transformer.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=stage.lr, betas=(0.9, 0.99), weight_decay=stage.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, stage.steps, stage.warmup))
    ema = Ema(model, stage.ema_decay)
    empty = table.index_of("")
    embeds, pooled = table.embeds.to(device), table.pooled.to(device)
    text_ids = None if table.text_ids is None else table.text_ids.to(device)
    lo = min(sizes)
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(stage.steps):
        size = max(sizes) if len(sizes) > 1 and rng.random() < stage.hi_fraction else lo
        n = max(1, stage.batch * lo * lo // (size * size))
        x0, idx = pool.sample(size, n, gen, device)
        drop = torch.rand(n, generator=gen) < stage.caption_dropout
        idx = torch.where(drop, torch.full_like(idx, empty), idx).to(device)
        sigma = sample_sigmas(n, gen, stage.uniform_fraction).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        loss = velocity_losses(pipe, family, x0, sigma, noise, embeds[idx], pooled[idx], text_ids).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), stage.grad_clip)
        opt.step()
        sched.step()
        ema.update(model, step)
        losses.append(loss.item())
        if (step + 1) % stage.log_every == 0 or step + 1 == stage.steps:
            recent = losses[-stage.log_every:]
            log(f"[{family}] step {step + 1}/{stage.steps} loss {sum(recent) / len(recent):.4f} "
                f"lr {sched.get_last_lr()[0]:.2e} {time.perf_counter() - start:.1f}s")
    seconds = time.perf_counter() - start
    model.load_state_dict(ema.shadow.state_dict())
    model.eval().requires_grad_(False)
    return {"steps": stage.steps, "seconds": seconds, "ms_per_step": 1000 * seconds / max(1, stage.steps),
            "losses": losses}
