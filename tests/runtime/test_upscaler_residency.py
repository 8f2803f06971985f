"""Upscaler models say how much of the device their weights hold, for the next model's memory plan."""

import pytest

pytest.importorskip("spandrel")

from app.upscale.models import UpscalerModels  # noqa: E402


@pytest.fixture
def tiny_upscaler_file(tmp_path):
    import torch
    from safetensors.torch import save_file
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    weights = {k: v.contiguous() for k, v in ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2)
               .state_dict().items()}
    path = tmp_path / "tiny-esrgan-x2.safetensors"
    save_file(weights, str(path))
    return path, sum(t.numel() * t.element_size() for t in weights.values())


def test_loaded_upscalers_report_their_weight_bytes_until_cleared(tiny_upscaler_file):
    path, weight_bytes = tiny_upscaler_file
    upscalers = UpscalerModels(device="cpu")
    assert upscalers.resident_bytes() == 0
    upscalers.descriptor(path)
    assert upscalers.resident_bytes() == weight_bytes
    upscalers.descriptor(path)  # the same file again: cached, not counted twice
    assert upscalers.resident_bytes() == weight_bytes
    upscalers.clear()
    assert upscalers.resident_bytes() == 0
