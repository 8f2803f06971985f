"""Cheap previews of latents during sampling: a linear map from latent channels to RGB.

Instead of hand-tuned factors for each VAE, the map is fitted once per loaded model by least squares:
a few flat-colour and gradient images are encoded with the model's own VAE, and each 8x8 block's mean
colour is regressed on its latent vector. Works for any 16-channel VAE, the demo models' included.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def unpack_flux_latents(latents, height: int, width: int, vae_scale_factor: int):
    """(B, tokens, C*4) packed 2x2 patches -> (B, C, H, W) latents, as FluxPipeline lays them out."""
    b, _, packed = latents.shape
    h = 2 * (height // (vae_scale_factor * 2))
    w = 2 * (width // (vae_scale_factor * 2))
    c = packed // 4
    x = latents.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, h, w)


class LatentPreviewer:
    def __init__(self, vae):
        self._vae = vae
        self._weights = None  # (C + 1, 3) float32 on CPU

    def _fit(self):
        import torch

        vae = self._vae
        device = next(vae.parameters()).device
        dtype = next(vae.parameters()).dtype
        g = torch.Generator().manual_seed(0)
        colours = torch.rand(12, 3, 1, 1, generator=g) * 2 - 1
        flat = colours.expand(12, 3, 64, 64)
        ramp = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(4, 3, 64, 64) * (torch.rand(4, 3, 1, 1, generator=g) * 2 - 1)
        images = torch.cat([flat, ramp]).contiguous()
        with torch.no_grad():
            latents = vae.encode(images.to(device, dtype)).latent_dist.mean.float().cpu()
        target = torch.nn.functional.avg_pool2d(images, 8)
        x = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        y = target.permute(0, 2, 3, 1).reshape(-1, 3)
        x = torch.cat([x, torch.ones(len(x), 1)], dim=1)
        self._weights = torch.linalg.lstsq(x, y).solution

    def to_image(self, latents):
        """Unscaled VAE latents (B, C, H, W) -> PIL image of the first item, at the latent resolution x8."""
        import torch
        from PIL import Image

        if self._weights is None:
            self._fit()
        z = latents[0].detach().float().cpu()
        c, h, w = z.shape
        x = torch.cat([z.permute(1, 2, 0).reshape(-1, c), torch.ones(h * w, 1)], dim=1)
        rgb = (x @ self._weights).reshape(h, w, 3).clamp(-1, 1)
        pixels = ((rgb + 1) * 127.5).round().to(torch.uint8).numpy()
        return Image.fromarray(pixels, "RGB").resize((w * 8, h * 8), Image.Resampling.BILINEAR)
