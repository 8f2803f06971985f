"""Easel: a local image-generation web UI for FLUX.1 and Stable Diffusion 3.5."""

__version__ = "0.1.0"
