"""Upscalers: the built-in resamplers now, model files (spandrel) later. See `registry`."""

from app.upscale.registry import (
    MAX_OUTPUT_SIDE,
    UnknownUpscaler,
    Upscaler,
    available_upscalers,
    find_upscaler,
    target_size,
    upscale,
)

__all__ = [
    "MAX_OUTPUT_SIDE",
    "UnknownUpscaler",
    "Upscaler",
    "available_upscalers",
    "find_upscaler",
    "target_size",
    "upscale",
]
