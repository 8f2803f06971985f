"""Configurations for the demo LoRAs: the full run that makes the shipped files, and a seconds-long smoke run.

Both keep every stage of the full run (fitting the encoder copy, inverting the decoder, training, judging
through the pipeline's own `load_lora_weights`), the same rank and the same layers, so the smoke run
exercises the path and the file format the full run ships.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.demo.train_config import FlowStage


@dataclass(frozen=True)
class LatentStage:
    """The latent pool the LoRA trains on: pictures with the new colour, and ordinary ones beside them.

    The shipped VAE's encoder never saw the new colour (it turns purple into green), but its decoder
    can draw it from latents it was never given. So a copy of the encoder is fitted with the decoder
    frozen, and each new-colour latent is then refined against the decoder (`invert_steps`).
    """

    new: tuple[int, ...]  # new-colour pictures per training size
    ordinary: tuple[int, ...]  # pictures of the base captions per size, encoded by the shipped encoder
    fit_steps: int
    fit_batch: int = 32
    fit_lr: float = 3e-3
    invert_steps: int = 40
    invert_lr: float = 0.05
    new_background_fraction: float = 1 / 3  # new-colour pictures where it is the background
    side_fraction: float = 0.2  # ordinary pictures with the shape on the left or right, as the base saw
    chunk: int = 64


@dataclass(frozen=True)
class TuneStage:
    """Tuning through the sampler after each round of flow training (app/demo/train_lora_tune.py)."""

    steps: int
    batch: int = 8  # sampled pictures of new-colour captions per step
    grad_steps: int = 4  # sampler steps, counted from the last, whose graph is kept
    lr: float = 5e-3
    flow_weight: float = 0.5  # weight of the flow loss on the pool beside the colour loss
    flow_batch: int = 16
    ordinary_batch: int = 0  # sampled pictures of base captions per step, pulled to their own colours
    sizes: tuple[int, ...] = (64,)  # picture sizes in px, taken in turn step by step
    background_fraction: float = 1 / 3
    log_every: int = 50


@dataclass(frozen=True)
class LoraEval:
    """The judge: the headline prompt over `seeds` seeds with and without the LoRA, and a control prompt."""

    seeds: int = 24
    size: int = 128  # the demo models' default size
    also_sizes: tuple[int, ...] = (64,)  # headline rate reported (not targeted) at these sizes too
    ordinary_limit: int = 30  # base captions (one seed each) judged with and without the LoRA
    new_limit: int = 36  # new-colour captions (one seed each) judged with the LoRA
    min_with: float = 0.9  # share of seeds whose centre reads purple with the LoRA
    max_without: float = 0.1  # ... and without it
    min_control: float = 0.8  # share of seeds where the control prompt keeps both its colours
    batch: int = 24
    steps: int | None = None  # sampling steps; None: the model's defaults (easel.json)


@dataclass(frozen=True)
class LoraTrainConfig:
    name: str
    sizes: tuple[int, ...]  # training resolutions in px
    rank: int  # alpha is written equal to the rank: scale 1
    latents: LatentStage
    flux: FlowStage
    sd3: FlowStage
    tune: dict[str, TuneStage]  # per family
    max_rounds: int  # training rounds of `steps` each, until the judge's targets are met
    eval: LoraEval = field(default_factory=LoraEval)


# Measured on a 2-core CPU: the pool ~6 min (shared by both models; the refining steps are most of it),
# FLUX ~150 ms a step, SD3 ~230 ms. Three pictures in four have the new colour: at half, the headline
# took twice the steps; lr 1e-2 learnt twice as fast as 2e-3 with no harm to the base colours. With this
# flow training alone FLUX's headline reached 12-18/24 seeds per round and plateaued (held-out loss on
# purple captions 0.84-0.90 against 0.53 for the base ones; the refined purple latents have std 1.26
# against 0.96); a pixel loss through the decoder beside the flow loss gave 12/24 at 2.4x the time.
# Tuning through the sampler (TuneStage: 400 steps, ~0.85 s a step for FLUX) after one flow round took
# the headline from 12/24 to 24/24 at 64 px (10/24 at 128 px), the control prompt staying 24/24.
# Alternating 64 and 128 px took FLUX to 24/24 at 128 px in one round. SD3 tuned on the new colour
# alone reached 24/24 but turned the control prompt purple (1/24 right); a second flow round brought
# the control back (21/24) and lost the headline (1/24). Its tuning also samples base captions
# (`ordinary_batch`) and pulls them to their own colours.
FULL = LoraTrainConfig(
    name="full",
    sizes=(64, 128),
    rank=8,
    latents=LatentStage(new=(768, 96), ordinary=(256, 32), fit_steps=300),
    flux=FlowStage(steps=1000, batch=32, lr=1e-2, warmup=30, hi_fraction=0.25, ema_decay=0.99, log_every=100),
    sd3=FlowStage(steps=1000, batch=32, lr=1e-2, warmup=30, hi_fraction=0.25, ema_decay=0.99, log_every=100),
    tune={"flux": TuneStage(steps=400, sizes=(64, 128)),
          "sd3": TuneStage(steps=400, sizes=(64, 128), ordinary_batch=4)},
    max_rounds=2,
)

SMOKE = LoraTrainConfig(
    name="smoke",
    sizes=(64,),
    rank=4,
    latents=LatentStage(new=(32,), ordinary=(16,), fit_steps=3, fit_batch=8, invert_steps=10, chunk=32),
    flux=FlowStage(steps=16, batch=16, lr=1e-2, warmup=2, ema_decay=0.5, log_every=4),
    sd3=FlowStage(steps=16, batch=16, lr=1e-2, warmup=2, ema_decay=0.5, log_every=4),
    tune={f: TuneStage(steps=2, batch=2, grad_steps=1, flow_batch=2, ordinary_batch=1, log_every=1)
          for f in ("flux", "sd3")},
    max_rounds=1,
    eval=LoraEval(seeds=2, size=64, also_sizes=(), ordinary_limit=2, new_limit=2, batch=4, steps=2),
)

CONFIGS = {c.name: c for c in (FULL, SMOKE)}
