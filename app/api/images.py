"""Images over JSON: base64 in (raw or `data:image/...;base64,` prefixed), base64 PNG out."""

from __future__ import annotations

import base64
import binascii
import io
import warnings

from PIL import Image

from app.errors import InvalidRequest
from app.generation.infotext import png_info_for

MAX_INPUT_SIDE = 8192


def decode_image(value: object, field: str, *, max_side: int = MAX_INPUT_SIDE) -> Image.Image:
    """The image a client sent in `field`, fully read. InvalidRequest naming `field` for anything else:
    not a string, bad base64, not an image, a truncated file, or one larger than `max_side`."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(field, "expected a base64-encoded image")
    data = value.strip()
    if data.startswith("data:"):
        header, sep, data = data.partition(",")
        if not sep or ";base64" not in header:
            raise InvalidRequest(field, "a data: URL must be base64 (data:image/png;base64,...)")
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        raise InvalidRequest(field, "not a valid base64 image") from None
    if not raw:
        raise InvalidRequest(field, "not a valid base64 image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
            width, height = image.size
            if width > max_side or height > max_side:
                raise InvalidRequest(field, f"is {width}x{height}; images up to {max_side}x{max_side} are accepted")
            image.load()  # Image.open is lazy: a truncated file fails only here
    except InvalidRequest:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidRequest(field, f"is too large; images up to {max_side}x{max_side} are accepted") from None
    except Exception:  # Pillow raises many kinds of errors for damaged or unknown data
        raise InvalidRequest(field, "not a valid base64 image (the data is not a complete PNG, JPEG or WebP)") from None
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        try:
            image = image.convert("RGBA" if "A" in image.getbands() or image.mode == "P" else "RGB")
        except Exception:
            raise InvalidRequest(field, f"has a pixel format Easel cannot read ({image.mode})") from None
    return image


def mask_luminance(mask: Image.Image) -> Image.Image:
    """The mask as one channel, read as the engine reads it: the alpha of a painted (RGBA) layer,
    otherwise the luminance. Inverting must happen on this, not on the RGB channels."""
    if mask.mode in ("RGBA", "LA") and mask.getextrema()[-1] != (255, 255):
        return mask.getchannel("A")
    return mask.convert("L")


def encode_png(image: Image.Image, infotext: str | None = None) -> str:
    """Raw base64 (no data: prefix) of `image` as PNG, with the infotext in its `parameters` chunk."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=png_info_for(infotext) if infotext else None)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
