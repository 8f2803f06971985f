"""lineart (UI: lineart_realistic) and lineart_coarse: the informative-drawings generator of ControlNet 1.1.

The network and its use are sd-webui-controlnet's `annotator/lineart`: a 3-residual-block image-to-
image generator with instance norms and a sigmoid, run on the RGB input in 0..1 at the preprocessor
resolution (padded to 64); its dark-lines-on-white output is inverted to white lines on black.
lllyasviel/Annotators publishes the weights as sk_model.pth (realistic) and sk_model2.pth (coarse):
a plain state dict, read with torch.load(weights_only=True), or the same tensors saved as
.safetensors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.controlnet.annotators.base import AnnotatorCall, WeightNeed, WeightOption
from app.controlnet.preprocess_sizing import resize_with_pad

_SOURCE = "lllyasviel/Annotators"


def _weights(stem: str) -> WeightNeed:
    return WeightNeed((
        WeightOption("lineart", (f"{stem}.safetensors",), _SOURCE),
        WeightOption("lineart", (f"{stem}.pth",), _SOURCE),
    ))


WEIGHTS_REALISTIC = _weights("sk_model")
WEIGHTS_COARSE = _weights("sk_model2")


def build_generator(n_residual_blocks: int = 3):
    """The generator (input_nc 3, output_nc 1), with the reference's module names so its weights load."""
    import torch.nn as nn

    norm = nn.InstanceNorm2d

    class ResidualBlock(nn.Module):
        def __init__(self, features: int):
            super().__init__()
            self.conv_block = nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3), norm(features), nn.ReLU(inplace=True),
                nn.ReflectionPad2d(1), nn.Conv2d(features, features, 3), norm(features),
            )

        def forward(self, x):
            return x + self.conv_block(x)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.model0 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(3, 64, 7), norm(64), nn.ReLU(inplace=True))
            down = []
            for c in (64, 128):
                down += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1), norm(c * 2), nn.ReLU(inplace=True)]
            self.model1 = nn.Sequential(*down)
            self.model2 = nn.Sequential(*[ResidualBlock(256) for _ in range(n_residual_blocks)])
            up = []
            for c in (256, 128):
                up += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1), norm(c // 2),
                       nn.ReLU(inplace=True)]
            self.model3 = nn.Sequential(*up)
            self.model4 = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(64, 1, 7), nn.Sigmoid())

        def forward(self, x):
            return self.model4(self.model3(self.model2(self.model1(self.model0(x)))))

    return Generator()


def read_state_dict(path: Path) -> dict:
    """Tensors from a .safetensors file, or from a .pth read without running pickled code."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    return torch.load(str(path), map_location="cpu", weights_only=True)


def _load(path: Path, device: str):
    model = build_generator()
    model.load_state_dict(read_state_dict(path))
    return model.to(device).eval()


def _run(weights: WeightNeed, image: np.ndarray, call: AnnotatorCall) -> np.ndarray:
    import torch

    option = weights.found(call.annotators_dir)
    assert option is not None, "Preprocessor.run checks the weights first"
    path = Path(call.annotators_dir) / option.folder / option.files[0]
    model = call.model(("lineart", str(path)), lambda: _load(path, call.device))
    padded, remove_pad = resize_with_pad(image, call.resolution)
    param = next(model.parameters())
    with torch.no_grad():
        x = torch.from_numpy(padded).to(param.device).float() / 255.0
        line = model(x.permute(2, 0, 1)[None].to(param.dtype))[0][0]
    line = (line.float().cpu().numpy() * 255.0).clip(0, 255).astype(np.uint8)
    return remove_pad(255 - line)


def lineart_realistic(image: np.ndarray, call: AnnotatorCall) -> np.ndarray:
    return _run(WEIGHTS_REALISTIC, image, call)


def lineart_coarse(image: np.ndarray, call: AnnotatorCall) -> np.ndarray:
    return _run(WEIGHTS_COARSE, image, call)
