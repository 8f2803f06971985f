"""Upscaler model files (ESRGAN, RealESRGAN, SwinIR, DAT, HAT, ...) loaded with spandrel.

spandrel reads the architecture from the weights, so any file it knows works without a config. Weights
are read safely: .safetensors directly, .pth/.pt with `torch.load(weights_only=True)`, which refuses a
pickle that would run code. The picture is processed in overlapping tiles so memory stays bounded for
any size, then resized to exactly the size asked (a 4x model asked for 2x is downscaled with Lanczos).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from PIL import Image

from app.errors import UnreadableModel

TILE, TILE_OVERLAP = 256, 16


def read_state_dict(path: Path) -> dict:
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:  # corrupt or truncated
            raise UnreadableModel(f"{path.name}: not a readable .safetensors file ({exc})") from None
    import pickle

    import torch

    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UnreadableModel(f"{path.name}: the file holds pickled code, which Easel does not run; "
                              "use a .safetensors copy of this upscaler") from None
    except Exception as exc:
        raise UnreadableModel(f"{path.name}: not a readable weights file ({type(exc).__name__}: {exc})") from None
    for key in ("params_ema", "params", "state_dict"):  # BasicSR / Lightning wrappers
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict):
        raise UnreadableModel(f"{path.name}: holds no weights dictionary")
    return data


class UpscalerModels:
    """Loads upscaler files on demand and keeps the last few loaded (a small LRU, per instance)."""

    def __init__(self, device: str | None = None, keep: int = 2,
                 run_exclusive: Callable[[Callable[[], Image.Image]], Image.Image] | None = None):
        self._device = device
        self._keep = keep
        self._loaded: OrderedDict[Path, object] = OrderedDict()
        self._lock = threading.Lock()
        # GPU work goes through the engine's worker when one is given, so it never overlaps a generation
        self._run_exclusive = run_exclusive or (lambda fn: fn())

    def descriptor(self, path: Path):
        path = Path(path)
        with self._lock:
            if path in self._loaded:
                self._loaded.move_to_end(path)
                return self._loaded[path]
        from spandrel import ImageModelDescriptor, ModelLoader

        try:
            model = ModelLoader().load_from_state_dict(read_state_dict(path))
        except UnreadableModel:
            raise
        except Exception as exc:  # spandrel does not know the architecture
            raise UnreadableModel(f"{path.name}: not an upscaler architecture spandrel knows ({exc})") from None
        if not isinstance(model, ImageModelDescriptor):
            raise UnreadableModel(f"{path.name}: is a {type(model).__name__}, not an image upscaler")
        model.to(self._torch_device()).eval()
        with self._lock:
            self._loaded[path] = model
            while len(self._loaded) > self._keep:
                self._loaded.popitem(last=False)
        return model

    def resident_bytes(self) -> int:
        """Bytes the loaded upscalers' weights take on their device (they stay there until dropped).

        The memory plan of the next model load counts them: on a GPU they take VRAM a pipeline cannot have.
        """
        with self._lock:
            models = [descriptor.model for descriptor in self._loaded.values()]
        return sum(_tensor_bytes(module) for module in models)

    def clear(self) -> None:
        """Drop every loaded upscaler (their memory goes back with the next collection)."""
        with self._lock:
            self._loaded.clear()

    def _torch_device(self) -> str:
        if self._device:
            return self._device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def upscale(self, path: Path, image: Image.Image, size: tuple[int, int]) -> Image.Image:
        def work() -> Image.Image:
            model = self.descriptor(path)
            src = image.convert("RGB")
            scale = int(model.scale)
            if src.width * scale > size[0] * 2 or src.height * scale > size[1] * 2:
                # far more than asked (a 4x model asked for 1.5x): shrink first, never make a giant picture
                src = src.resize((max(1, -(-size[0] // scale)), max(1, -(-size[1] // scale))), Image.Resampling.LANCZOS)
            out = run_tiled(model, src)
            return out if out.size == size else out.resize(size, Image.Resampling.LANCZOS)

        return self._run_exclusive(work)


def _tensor_bytes(module) -> int:
    """Bytes of a torch module's parameters and buffers."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def run_tiled(model, image: Image.Image, tile: int = TILE, overlap: int = TILE_OVERLAP) -> Image.Image:
    """The model over overlapping tiles; each output tile is cropped to its own area, so no seams."""
    import numpy as np
    import torch

    scale = int(model.scale)
    device = next(model.model.parameters()).device
    src = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).unsqueeze(0)
    _, _, h, w = src.shape
    out = torch.zeros(1, 3, h * scale, w * scale)
    step = tile - 2 * overlap
    with torch.inference_mode():
        for y in range(0, h, step):
            for x in range(0, w, step):
                x0, y0 = max(0, x - overlap), max(0, y - overlap)
                x1, y1 = min(w, x + step + overlap), min(h, y + step + overlap)
                piece = model(src[:, :, y0:y1, x0:x1].to(device)).float().cpu().clamp(0, 1)
                ox, oy = (x - x0) * scale, (y - y0) * scale
                tw, th = (min(x + step, w) - x) * scale, (min(y + step, h) - y) * scale
                out[:, :, y * scale:y * scale + th, x * scale:x * scale + tw] = piece[:, :, oy:oy + th, ox:ox + tw]
    pixels = (out[0].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(pixels, "RGB")
