"""What one job asks of the device beside the weights, and the memory kept free for it.

Activations grow with the pixels processed at once: batch size x width x height. The figures below were
measured with random weights of the released sizes in bf16, batch 1, on an H200:

  FLUX transformer forward   0.46 GiB over its weights at 1024², 0.96 GiB at 1536²
  16-channel VAE decode      2.38 GiB at 1024², 5.35 GiB at 1536²

Both grow in proportion to the pixels (2.25x the pixels: 2.1x and 2.25x the memory; SDPA attention is
linear in memory), so a job's reserve is the 1024² figure scaled by its pixels. fp32 doubles them.

Two diffusers tactics make a decode cheaper, and the plan chooses them per job:
  VAE slicing  decodes a batch one image at a time        (the reserve of one image, not of the batch)
  VAE tiling   decodes one image in overlapping tiles     (about the reserve of one 1024² tile; it only
               engages when a side is above the VAE's sample_size, 1024 px for FLUX and SD3.5)
"""

from __future__ import annotations

from dataclasses import dataclass

from app.runtime.devices import GIB
from app.runtime.footprint import BYTES_PER_ELEMENT

REFERENCE_SIDE = 1024  # the measured size; also FLUX's and SD3.5's VAE sample_size (where tiling engages)
_REFERENCE_PIXELS = REFERENCE_SIDE * REFERENCE_SIDE

# Denoising: Forge's default inference memory of 1024 MB covers a 1024² batch of two, or one 1536² image.
BASE_RESERVE = 1 * GIB
DENOISE_ACTIVATIONS = int(0.46 * GIB)  # per 1024² image, 16-bit
# Decoding: a 1024² decode needs this much beside whatever stays resident (measured 2.38 GiB). 16-bit.
VAE_DECODE_RESERVE = int(2.5 * GIB)
# Above 24 GiB, a further 5% of the excess: users of big cards run batches and larger images.
BIG_CARD_RESERVE_FROM = 24 * GIB
BIG_CARD_RESERVE_FRACTION = 0.05


@dataclass(frozen=True)
class Workload:
    """Images per pipeline call and their size. The default is the measured reference: one 1024² image.
    addon_bytes: the 16-bit weights of models the job runs beside the transformer at every step (its
    ControlNets), which the device holds with it while denoising."""

    batch_size: int = 1
    width: int = REFERENCE_SIDE
    height: int = REFERENCE_SIDE
    addon_bytes: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "width", "height"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"workload {name} must be a whole number of at least 1; got {value!r}")
        if not isinstance(self.addon_bytes, int) or self.addon_bytes < 0:
            raise ValueError(f"workload addon_bytes must be a whole number of at least 0; got {self.addon_bytes!r}")

    @property
    def image_scale(self) -> float:
        """One image's pixels over the 1024² reference."""
        return self.width * self.height / _REFERENCE_PIXELS

    @property
    def tiling_engages(self) -> bool:
        """diffusers tiles a decode only when a side exceeds the VAE's sample_size."""
        return max(self.width, self.height) > REFERENCE_SIDE

    def describe(self) -> str:
        """'1024x1024' for one image, '8 x 1024x1024' for a batch."""
        size = f"{self.width}x{self.height}"
        size = size if self.batch_size == 1 else f"{self.batch_size} x {size}"
        return f"{size} with ControlNets of {self.addon_bytes / GIB:.1f} GiB" if self.addon_bytes else size


def inference_reserve(total_memory: int) -> int:
    """The floor kept free for denoising: 1 GiB (Forge's default), plus 5% of whatever is above 24 GiB.

    ComfyUI keeps at least 0.8 GiB for inference and 400-600 MB for the driver; the driver's share is
    already missing from the free memory the plan starts from, so it is not counted twice.
    """
    extra = max(0, total_memory - BIG_CARD_RESERVE_FROM) * BIG_CARD_RESERVE_FRACTION
    return BASE_RESERVE + int(extra)


def denoise_reserve(total_memory: int, dtype: str, workload: Workload = Workload()) -> int:
    """Memory the denoising loop needs beside the weights: the floor, or the job's activations if larger,
    and the add-on models it runs beside the transformer."""
    activations = DENOISE_ACTIVATIONS * workload.batch_size * workload.image_scale * _width_factor(dtype)
    return max(inference_reserve(total_memory), int(activations)) + int(workload.addon_bytes * _width_factor(dtype))


def vae_decode_reserve(dtype: str, workload: Workload = Workload(), *, sliced: bool = False,
                       tiled: bool = False) -> int:
    """Memory the VAE decode of `workload` needs beside the weights, in `dtype`.

    `sliced`: one image at a time instead of the whole batch; `tiled`: a large image in 1024² tiles.
    """
    images = 1 if sliced else workload.batch_size
    per_image = min(workload.image_scale, 1.0) if tiled else workload.image_scale
    return int(VAE_DECODE_RESERVE * _width_factor(dtype) * images * per_image)


def _width_factor(dtype: str) -> float:
    return BYTES_PER_ELEMENT[dtype] / 2
