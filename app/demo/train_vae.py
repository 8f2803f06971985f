"""Training the shapes VAE, and encoding a pool of latents once for the transformer stages.

Encoding a picture costs about as much as a transformer step, so the transformers never see pixels:
a pool of pictures is encoded once, each posterior kept as (mean, std), and every training step draws
fresh latents from those posteriors. The pool's statistics set the VAE's shift and scaling factors,
which the pipelines apply around the transformer, so the latents it sees have mean 0 and std 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from app.demo.shapes import sample_batch, sample_specs, draw, to_tensor
from app.demo.train_config import VaeStage

Log = Callable[[str], None]


def _vae_loss(vae: Any, x: torch.Tensor, gen: torch.Generator, kl_weight: float) -> torch.Tensor:
    post = vae.encode(x).latent_dist
    z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen).to(x.device)
    rec = vae.decode(z).sample
    return torch.nn.functional.mse_loss(rec, x) + kl_weight * post.kl().mean()


def train_vae(vae: Any, stage: VaeStage, sizes: tuple[int, ...], side_fraction: float,
              device: torch.device, seed: int, log: Log) -> dict[str, Any]:
    """Train `vae` in place on freshly drawn pictures (MSE + a little KL, posterior sampled)."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    vae.to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=stage.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, stage.steps))
    lo, hi = min(sizes), max(sizes)
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(stage.steps):
        size = hi if hi != lo and rng.random() < stage.hi_fraction else lo
        x, _ = sample_batch(max(1, stage.batch * lo * lo // (size * size)), size, rng, side_fraction)
        loss = _vae_loss(vae, x.to(device), gen, stage.kl_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % stage.log_every == 0 or step + 1 == stage.steps:
            recent = losses[-stage.log_every:]
            log(f"[vae] step {step + 1}/{stage.steps} loss {sum(recent) / len(recent):.4f} "
                f"{time.perf_counter() - start:.1f}s")
    seconds = time.perf_counter() - start
    vae.eval().requires_grad_(False)
    recon = {size: reconstruction_mse(vae, size, device, seed + 1) for size in sizes}
    log("[vae] reconstruction MSE " + ", ".join(f"{s}px {v:.4f}" for s, v in recon.items()))
    return {"steps": stage.steps, "seconds": seconds, "ms_per_step": 1000 * seconds / max(1, stage.steps),
            "losses": losses, "reconstruction_mse": recon}


@torch.no_grad()
def reconstruction_mse(vae: Any, size: int, device: torch.device, seed: int, n: int = 32) -> float:
    """Mean squared error (on the [-1, 1] scale) of decoding the posterior mean of fresh pictures."""
    x, _ = sample_batch(n, size, np.random.default_rng(seed), 0.2)
    x = x.to(device)
    rec = vae.decode(vae.encode(x).latent_dist.mean).sample
    return torch.nn.functional.mse_loss(rec, x).item()


@dataclass
class LatentPool:
    """Encoded pictures per size: posterior mean and std (fp16) and the caption index of each."""

    mean: dict[int, torch.Tensor]
    std: dict[int, torch.Tensor]
    caption_idx: dict[int, torch.Tensor]
    shift: float
    scale: float

    def sample(self, size: int, n: int, gen: torch.Generator, device: torch.device):
        """`n` latents drawn from random posteriors at `size`, normalised as the pipelines do
        ((z − shift) × scale), and their caption indices."""
        i = torch.randint(len(self.caption_idx[size]), (n,), generator=gen)
        mean, std = self.mean[size][i.to(self.mean[size].device)], self.std[size][i.to(self.std[size].device)]
        eps = torch.randn(mean.shape, generator=gen).to(mean.device)
        z = mean.float() + std.float() * eps
        return ((z - self.shift) * self.scale).to(device), self.caption_idx[size][i]


@torch.no_grad()
def encode_pool(vae: Any, counts: tuple[int, ...], sizes: tuple[int, ...], captions: list[str],
                side_fraction: float, device: torch.device, seed: int, log: Log,
                chunk: int = 256) -> tuple[LatentPool, dict[str, Any]]:
    """Draw and encode `counts[k]` pictures at `sizes[k]`; return the pool and a report."""
    rng = np.random.default_rng(seed)
    index = {c: i for i, c in enumerate(captions)}
    means, stds, idxs = {}, {}, {}
    start = time.perf_counter()
    for size, count in zip(sizes, counts):
        m_parts, s_parts, i_parts = [], [], []
        for first in range(0, count, chunk):
            specs = sample_specs(min(chunk, count - first), rng, side_fraction)
            x = to_tensor([draw(s, size, rng) for s in specs]).to(device)
            post = vae.encode(x).latent_dist
            m_parts.append(post.mean.half())
            s_parts.append(post.std.half())
            i_parts.append(torch.tensor([index[s.caption] for s in specs]))
        means[size], stds[size], idxs[size] = torch.cat(m_parts), torch.cat(s_parts), torch.cat(i_parts)
        log(f"[pool] {count} pictures at {size}px encoded {time.perf_counter() - start:.1f}s")
    # Statistics of sampled latents at the smaller size (the bulk of the pool).
    lo = min(sizes)
    gen = torch.Generator().manual_seed(seed)
    sample = means[lo].float() + stds[lo].float() * torch.randn(means[lo].shape, generator=gen).to(device)
    shift, std = sample.mean().item(), sample.std().item()
    seconds = time.perf_counter() - start
    log(f"[pool] latent mean {shift:.4f} std {std:.4f} -> shift_factor {shift:.4f} scaling_factor {1 / std:.4f}")
    pool = LatentPool(means, stds, idxs, shift=shift, scale=1.0 / std)
    report = {"pictures": dict(zip(sizes, counts)), "seconds": seconds, "latent_mean": shift, "latent_std": std,
              "posterior_std_mean": stds[lo].float().mean().item()}
    return pool, report
