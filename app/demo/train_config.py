"""Training configurations for the shapes demo models: the full run and a seconds-long smoke run.

The full run is sized to finish within an hour on a 2-core CPU (see the ms/step figures in the
report it prints); on a GPU the same steps take minutes. The smoke run keeps every stage and the
same architectures but only a handful of steps, so tests exercise the real code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class VaeStage:
    steps: int
    batch: int  # pictures per step at the smaller size (scaled down for the larger one)
    lr: float
    widths: tuple[int, ...] = (8, 16, 32, 32)
    kl_weight: float = 1e-6  # of the per-picture KL sum; just enough to keep the latents bounded
    hi_fraction: float = 0.25  # share of steps at the larger size
    log_every: int = 100


@dataclass(frozen=True)
class FlowStage:
    steps: int
    batch: int  # latents per step at the smaller size (scaled down for the larger one)
    lr: float
    warmup: int
    hi_fraction: float = 0.3
    ema_decay: float = 0.999
    caption_dropout: float = 0.1  # captions replaced by "", so true CFG and negative prompts work
    uniform_fraction: float = 0.1  # share of noise levels drawn uniformly instead of logit-normal
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    log_every: int = 100


@dataclass(frozen=True)
class EvalStage:
    seeds: tuple[int, ...] = (0, 1)
    caption_limit: int | None = None  # None: every base caption; else an even spread of this many
    flux_steps: int = 4
    # SD3 defaults are chosen by a sweep over (steps, cfg_scale) at the larger size on a subset.
    sd3_candidates: tuple[tuple[int, float], ...] = ((4, 3.0), (8, 3.0), (8, 4.5), (12, 4.5), (16, 4.5))
    sweep_caption_limit: int = 30
    batch: int = 30


@dataclass(frozen=True)
class TrainConfig:
    name: str
    sizes: tuple[int, ...]  # training resolutions in px, multiples of 16
    side_fraction: float  # share of pictures whose shape sits left or right (said so in the caption)
    vae: VaeStage
    pool: tuple[int, ...]  # pictures encoded once per size, resampled by the transformer stages
    flux: FlowStage
    sd3: FlowStage
    eval: EvalStage = field(default_factory=EvalStage)


# Measured on a 2-core CPU, ms/step at 64 px / 128 px with these batches: VAE 306 / 230, FLUX 176-224 /
# 125-161, SD3 287 / 119 (SD3 carries 77 CLIP + 16 T5 text tokens through every block); pool encoding
# 1.1 / 4.8 ms a picture. Estimate: VAE 5.7 min + pool 0.8 + FLUX 13-17 + SD3 16.5 + evaluation and
# saving ~2 ≈ 38-42 min.
FULL = TrainConfig(
    name="full",
    sizes=(64, 128),
    side_fraction=0.2,
    vae=VaeStage(steps=1200, batch=32, lr=2e-3),
    pool=(20_000, 5_000),
    flux=FlowStage(steps=5000, batch=64, lr=1e-3, warmup=200, hi_fraction=0.4),
    sd3=FlowStage(steps=4500, batch=48, lr=1e-3, warmup=200, hi_fraction=0.4),
)

SMOKE = TrainConfig(
    name="smoke",
    sizes=(32, 64),
    side_fraction=0.2,
    vae=VaeStage(steps=40, batch=16, lr=1e-2, log_every=10),
    pool=(96, 24),
    flux=FlowStage(steps=30, batch=8, lr=2e-3, warmup=3, log_every=10),
    sd3=FlowStage(steps=30, batch=8, lr=2e-3, warmup=3, log_every=10),
    eval=EvalStage(seeds=(0,), caption_limit=6, sd3_candidates=((4, 3.0), (8, 4.5)), sweep_caption_limit=4),
)

CONFIGS = {c.name: c for c in (FULL, SMOKE)}
