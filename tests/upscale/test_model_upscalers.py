"""Upscaler model files through spandrel: found by the catalog, loaded safely, run tiled, sized exactly."""

import pickle
from pathlib import Path

import pytest
from PIL import Image

spandrel = pytest.importorskip("spandrel")

from app.catalog.scan import scan_models  # noqa: E402
from app.errors import UnreadableModel  # noqa: E402
from app.upscale.models import UpscalerModels, run_tiled  # noqa: E402
from app.upscale.registry import available_upscalers, upscale  # noqa: E402


def tiny_esrgan(scale=2):
    import torch
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    return ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=scale)


@pytest.fixture
def models_dir(tmp_path):
    import torch
    from safetensors.torch import save_file

    folder = tmp_path / "upscale_models"
    folder.mkdir()
    net = tiny_esrgan()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "tiny-esrgan-x2.safetensors"))
    torch.save(net.state_dict(), folder / "tiny-esrgan-x2-pth.pth")
    return tmp_path


def test_catalog_lists_upscaler_files_and_they_upscale_to_the_asked_size(models_dir):
    ups = available_upscalers(scan_models([models_dir]), UpscalerModels(device="cpu"))
    names = [u.name for u in ups]
    assert names[:3] == ["None", "Lanczos", "Nearest"]
    assert "tiny-esrgan-x2" in names and "tiny-esrgan-x2-pth" in names
    image = Image.new("RGB", (40, 24), (200, 40, 40))
    for name in ("tiny-esrgan-x2", "tiny-esrgan-x2-pth"):
        assert upscale(image, name, scale=2, upscalers=ups).size == (80, 48)
        assert upscale(image, name, scale=3, upscalers=ups).size == (120, 72)  # a 2x model, resized on


def test_tiles_join_without_seams():
    net = tiny_esrgan()
    from spandrel import ModelLoader

    model = ModelLoader().load_from_state_dict(net.state_dict()).eval()
    image = Image.effect_noise((70, 50), 60).convert("RGB")
    whole = run_tiled(model, image, tile=512, overlap=0)
    tiled = run_tiled(model, image, tile=40, overlap=8)
    import numpy as np

    diff = np.abs(np.asarray(whole).astype(int) - np.asarray(tiled).astype(int))
    assert whole.size == (140, 100) and diff.max() <= 2


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"conv_first.weight": Evil()}))
    with pytest.raises(UnreadableModel, match="pickled code"):
        UpscalerModels(device="cpu").descriptor(path)
    assert not marker.exists()


def test_a_file_spandrel_does_not_know_is_named(tmp_path):
    from safetensors.torch import save_file
    import torch

    save_file({"something.weight": torch.zeros(2, 2)}, str(tmp_path / "odd.safetensors"))
    with pytest.raises(UnreadableModel, match="odd.safetensors"):
        UpscalerModels(device="cpu").descriptor(tmp_path / "odd.safetensors")
