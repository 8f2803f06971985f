"""Shaping what a ControlNet adds to the transformer: per-unit region masks and control modes.

A FLUX or SD3 ControlNet returns one residual per transformer block it feeds, each [batch, tokens,
width] with one token per 16 x 16 pixels of the picture (FLUX packs 2 x 2 latent patches of the 8x
VAE, SD3 patches 2 x 2 latents), so a unit's mask becomes one factor per token and a control mode one
factor per block. They are applied by a forward hook on the unit's ControlNet model (torch's public
`register_forward_hook`), removed again before the next job.

Control modes, as sd-webui-controlnet has them:
- "prompt" (My prompt is more important): block i of n gets 0.825 ** (n - 1 - i), the soft injection
  sd-webui-controlnet applies to its 13 UNet residuals, so the early blocks steer less.
- "controlnet" (ControlNet is more important): the unconditional half of a CFG batch gets no control,
  so classifier-free guidance pushes towards it (only where the pipeline batches CFG: SD3.5).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

SOFT_INJECTION_BASE = 0.825
TOKEN_PIXELS = 16


@dataclass(frozen=True)
class ResidualShaping:
    """How one unit's residuals are shaped; `needed` is False for a plain unit (no hook at all)."""

    token_mask: Any = None  # torch tensor [1, tokens, 1], or None: everywhere
    soft_injection: bool = False
    drop_unconditional: bool = False

    @property
    def needed(self) -> bool:
        return self.token_mask is not None or self.soft_injection or self.drop_unconditional


def token_mask(mask, width: int, height: int):
    """A unit's mask (PIL, white = acts) as one factor per 16 x 16 px token of a width x height picture."""
    import numpy as np
    import torch
    from PIL import Image

    cols, rows = width // TOKEN_PIXELS, height // TOKEN_PIXELS
    small = mask.convert("L").resize((cols, rows), Image.Resampling.BOX)
    values = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0)
    return values.reshape(1, rows * cols, 1)


def shape_residuals(module, shapings: list[ResidualShaping]):
    """Hook `module` (a ControlNet model) so its residuals are shaped; returns the handle to remove.
    With several shapings (units sharing the model), call k of each step takes shapings[k]: the Multi
    models call their nets in the units' order, once each per step."""
    calls = itertools.count()
    return module.register_forward_hook(
        lambda _module, _args, output: _shaped(output, shapings[next(calls) % len(shapings)]))


def _shaped(output, shaping: ResidualShaping):
    groups = list(output.to_tuple() if hasattr(output, "to_tuple") else output)
    residuals = [r for group in groups if group is not None for r in group]
    total = len(residuals)
    index = 0
    shaped_groups = []
    for group in groups:
        if group is None:
            shaped_groups.append(None)
            continue
        shaped = []
        for residual in group:
            shaped.append(_shape_one(residual, index, total, shaping))
            index += 1
        shaped_groups.append(type(group)(shaped) if isinstance(group, (list, tuple)) else shaped)
    return tuple(shaped_groups)


def _shape_one(residual, index: int, total: int, shaping: ResidualShaping):
    if shaping.soft_injection:
        residual = residual * (SOFT_INJECTION_BASE ** float(total - 1 - index))
    if shaping.token_mask is not None and residual.shape[1] == shaping.token_mask.shape[1]:
        residual = residual * shaping.token_mask.to(device=residual.device, dtype=residual.dtype)
    if shaping.drop_unconditional and residual.shape[0] % 2 == 0:
        half = residual.shape[0] // 2
        residual = residual.clone()
        residual[:half] = 0
    return residual
