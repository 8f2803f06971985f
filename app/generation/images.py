"""Preparing input images and masks as A1111 does: resize modes, mask blur, pasting the original back."""

from __future__ import annotations

from PIL import Image, ImageFilter, ImageOps


def fit_image(image: Image.Image, width: int, height: int, mode: str) -> Image.Image:
    """Resize to width x height. just-resize stretches; crop-and-resize fills then crops the centre;
    resize-and-fill fits inside and fills the borders by stretching the edge pixels (A1111's modes)."""
    image = image.convert("RGB")
    if image.size == (width, height):
        return image
    if mode == "just-resize":
        return image.resize((width, height), Image.Resampling.LANCZOS)
    if mode == "crop-and-resize":
        return ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS)
    if mode == "resize-and-fill":
        inner = ImageOps.contain(image, (width, height), Image.Resampling.LANCZOS)
        canvas = image.resize((width, height), Image.Resampling.LANCZOS).filter(ImageFilter.GaussianBlur(16))
        canvas.paste(inner, ((width - inner.width) // 2, (height - inner.height) // 2))
        return canvas
    raise ValueError(f"unknown resize mode {mode!r}")


def prepare_mask(mask: Image.Image, width: int, height: int, mode: str, blur: int) -> Image.Image:
    """A single-channel mask (white = repaint) at the output size, blurred by `blur` pixels.

    An RGBA mask (a painted layer) uses its alpha; anything else its luminance.
    """
    if mask.mode in ("RGBA", "LA") and mask.getextrema()[-1] != (255, 255):
        mask = mask.getchannel("A")
    mask = mask.convert("L")
    if mask.size != (width, height):
        if mode == "crop-and-resize":
            mask = ImageOps.fit(mask, (width, height), Image.Resampling.LANCZOS)
        else:
            mask = mask.resize((width, height), Image.Resampling.LANCZOS)
    if blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    return mask


def paste_unmasked(generated: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """Keep the original's pixels where the mask is black, blend along the blurred edge (A1111's overlay).

    Without this, unmasked pixels would pass through the VAE and change slightly."""
    if generated.size != original.size:
        generated = generated.resize(original.size, Image.Resampling.LANCZOS)
    return Image.composite(generated.convert("RGB"), original.convert("RGB"), mask.convert("L"))


def fill_masked(image: Image.Image, mask: Image.Image, mode: str, seed: int) -> Image.Image:
    """What the masked area starts from (A1111's "masked content").

    original: the picture as it is. fill: the masked area replaced by the colours around it, heavily
    blurred, so the model is not anchored to the old content. latent-noise: the masked area replaced by
    noise (drawn from the seed), the closest a pixel-space fill gets to starting that area from noise.
    """
    if mode == "original":
        return image
    hard = mask.point(lambda v: 255 if v >= 128 else 0)
    if mode == "fill":
        filler = image
        for radius in (4, 16, 64, 128):
            blurred = filler.filter(ImageFilter.GaussianBlur(radius))
            filler = Image.composite(blurred, image, hard)
        return filler
    if mode == "latent-noise":
        import numpy as np

        rng = np.random.default_rng(seed)
        noise = Image.fromarray(rng.integers(0, 256, (image.height, image.width, 3), dtype=np.uint8), "RGB")
        return Image.composite(noise, image, hard)
    raise ValueError(f"unknown masked content {mode!r} (allowed: original, fill, latent-noise)")
