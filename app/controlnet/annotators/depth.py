"""depth_anything_v2: relative depth by Depth Anything V2, through transformers, from a local folder.

sd-webui-controlnet runs the ViT-L model of the Depth Anything V2 repository; here the same network
is read in transformers' layout (the `-hf` repositories), Large first, Base or Small when that is what
is on disk. The steps around the network are the extension's: the input at the preprocessor
resolution (padded to 64), scaled so its short side is at least 518 and both sides multiples of 14
(cubic), ImageNet-normalised; the prediction resized back bilinearly and stretched to 0..255 gray,
near bright.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.controlnet.annotators.base import AnnotatorCall, WeightNeed, WeightOption
from app.controlnet.preprocess_sizing import resize_with_pad

_FILES = ("config.json", "model.safetensors")
WEIGHTS = WeightNeed((
    WeightOption("depth-anything-v2-large", _FILES, "depth-anything/Depth-Anything-V2-Large-hf"),
    WeightOption("depth-anything-v2-base", _FILES, "depth-anything/Depth-Anything-V2-Base-hf"),
    WeightOption("depth-anything-v2-small", _FILES, "depth-anything/Depth-Anything-V2-Small-hf"),
))

_NET_SIZE = 518
_MULTIPLE = 14
_MEAN = np.array([0.485, 0.456, 0.406])
_STD = np.array([0.229, 0.224, 0.225])


def _multiple_at_least(x: float, minimum: int) -> int:
    """The reference's constrain_to_multiple_of(x, min_val=minimum): nearest multiple, else next up."""
    y = int(np.round(x / _MULTIPLE) * _MULTIPLE)
    if y < minimum:
        y = int(np.ceil(x / _MULTIPLE) * _MULTIPLE)
    return y


def net_input(rgb: np.ndarray) -> np.ndarray:
    """uint8 [h, w, 3] -> float32 [3, H, W] as the Depth Anything V2 transform makes it."""
    import cv2

    h, w = rgb.shape[:2]
    scale = max(_NET_SIZE / h, _NET_SIZE / w)  # "lower_bound": both sides at least 518
    size = (_multiple_at_least(scale * w, _NET_SIZE), _multiple_at_least(scale * h, _NET_SIZE))
    x = cv2.resize(rgb / 255.0, size, interpolation=cv2.INTER_CUBIC)
    x = (x - _MEAN) / _STD
    return np.ascontiguousarray(np.transpose(x, (2, 0, 1))).astype(np.float32)


def _load(folder: Path, device: str):
    from transformers import AutoModelForDepthEstimation

    model = AutoModelForDepthEstimation.from_pretrained(str(folder), local_files_only=True)
    return model.to(device).eval()


def depth_anything_v2(image: np.ndarray, call: AnnotatorCall) -> np.ndarray:
    """Depth map uint8 [h, w] at the preprocessor resolution."""
    import cv2
    import torch
    import torch.nn.functional as F

    option = WEIGHTS.found(call.annotators_dir)
    assert option is not None, "Preprocessor.run checks the weights first"
    folder = Path(call.annotators_dir) / option.folder
    model = call.model(("depth_anything_v2", str(folder)), lambda: _load(folder, call.device))

    padded, remove_pad = resize_with_pad(image, call.resolution)
    h, w = padded.shape[:2]
    # sd-webui-controlnet hands this step RGB and it converts "BGR to RGB", so the network sees the
    # channels swapped; kept so the maps are the extension's.
    x = torch.from_numpy(net_input(cv2.cvtColor(padded, cv2.COLOR_BGR2RGB)))[None]
    param = next(model.parameters())
    with torch.no_grad():
        depth = model(pixel_values=x.to(param.device, param.dtype)).predicted_depth
    depth = F.interpolate(depth[None].float(), (h, w), mode="bilinear", align_corners=False)[0, 0]
    low, high = depth.min(), depth.max()
    if float(high - low) <= 0:  # a flat prediction: the reference would divide by zero
        return remove_pad(np.zeros((h, w), dtype=np.uint8))
    depth = (depth - low) / (high - low) * 255.0
    return remove_pad(depth.cpu().numpy().astype(np.uint8))
