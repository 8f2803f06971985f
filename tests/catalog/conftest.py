"""Shared fixtures of the catalog tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tinyfiles import clip_keys, flux_bfl_keys, t5_keys, vae_keys, write_model


@pytest.fixture
def comfy(tmp_path: Path) -> Path:
    """A ComfyUI models folder with a FLUX schnell transformer and everything it needs."""
    root = tmp_path / "models"
    write_model(root / "diffusion_models" / "flux1-schnell.safetensors", flux_bfl_keys(dev=False))
    write_model(root / "text_encoders" / "clip_l.safetensors", clip_keys(768, projection=False))
    write_model(root / "text_encoders" / "t5xxl_fp16.safetensors", t5_keys())
    write_model(root / "vae" / "ae.safetensors", vae_keys(16))
    return root
