"""Sizing of ControlNet inputs and maps, computed as sd-webui-controlnet computes them.

Three steps, each as the extension has it:
- `pixel_perfect_resolution`: the preprocessor resolution that makes the map cover the job's picture
  one pixel per pixel (its `external_code.pixel_perfect_resolution`).
- `resize_with_pad`: the preprocessor's input resized so its short side is the resolution, padded to a
  multiple of 64 by repeating the edge, with a function that cuts the pad off the map again (its
  `resize_image_with_pad`; detectors with strided convolutions need the multiple of 64).
- `fit_control_map`: the map brought to the job's size in the job's resize mode (its
  `Script.detectmap_proc` with `high_quality_resize`, which keeps one-pixel edges one pixel wide).

Images travel as uint8 numpy arrays [height, width, 3] (RGB) between these steps.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image

from app.errors import InvalidRequest
from app.controlnet.annotators.thinning import lvmin_thin, nake_nms

RESIZE_MODES = ("just-resize", "crop-and-resize", "resize-and-fill")


def _check_mode(resize_mode: str) -> None:
    if resize_mode not in RESIZE_MODES:
        raise InvalidRequest("resize_mode", f"{resize_mode!r} is not one of {', '.join(RESIZE_MODES)}")


def pixel_perfect_resolution(image_size: tuple[int, int], target_width: int, target_height: int,
                             resize_mode: str) -> int:
    """The preprocessor resolution for a picture of `image_size` (width, height) used at the target size.

    The scale that brings the picture to the target (the smaller of the two axes' scales when the
    picture is fitted inside, resize-and-fill; the larger otherwise) times the picture's short side,
    rounded half to even as numpy's round is.
    """
    _check_mode(resize_mode)
    raw_w, raw_h = image_size
    k0 = float(target_height) / float(raw_h)
    k1 = float(target_width) / float(raw_w)
    k = min(k0, k1) if resize_mode == "resize-and-fill" else max(k0, k1)
    return int(round(k * float(min(raw_h, raw_w))))


def hwc3(image: Image.Image | np.ndarray) -> np.ndarray:
    """Any picture as uint8 [h, w, 3]; transparency is laid over white (sd-webui-controlnet's HWC3)."""
    if isinstance(image, Image.Image):
        if image.mode not in ("RGB", "RGBA", "L"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        x = np.asarray(image)
    else:
        x = image
    if x.dtype != np.uint8:
        raise ValueError(f"expected a uint8 picture, got {x.dtype}")
    if x.ndim == 2:
        x = x[:, :, None]
    channels = x.shape[2]
    if channels == 3:
        return np.ascontiguousarray(x)
    if channels == 1:
        return np.concatenate([x, x, x], axis=2)
    if channels == 4:
        color = x[:, :, 0:3].astype(np.float32)
        alpha = x[:, :, 3:4].astype(np.float32) / 255.0
        return (color * alpha + 255.0 * (1.0 - alpha)).clip(0, 255).astype(np.uint8)
    raise ValueError(f"a picture with {channels} channels")


def _pad64(x: int) -> int:
    return int(np.ceil(float(x) / 64.0) * 64 - x)


def resize_with_pad(image: np.ndarray, resolution: int) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """`image` scaled so its short side is `resolution` (cubic up, area down), edge-padded to multiples
    of 64; and the function that crops a map of the padded size back to the scaled size."""
    import cv2

    img = hwc3(image)
    h_raw, w_raw, _ = img.shape
    k = float(resolution) / float(min(h_raw, w_raw))
    interpolation = cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    h_target = int(np.round(float(h_raw) * k))
    w_target = int(np.round(float(w_raw) * k))
    img = cv2.resize(img, (w_target, h_target), interpolation=interpolation)
    padded = np.pad(img, [[0, _pad64(h_target)], [0, _pad64(w_target)], [0, 0]], mode="edge")

    def remove_pad(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x[:h_target, :w_target]).copy()

    return np.ascontiguousarray(padded), remove_pad


def _unique_rows(data: np.ndarray) -> np.ndarray:
    arr = data[np.lexsort(data.T)]
    keep = np.empty(len(arr), dtype=np.bool_)
    keep[:1] = True
    keep[1:] = np.any(arr[:-1, :] != arr[1:, :], axis=-1)
    return arr[keep]


def high_quality_resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map resized to size (width, height) the way sd-webui-controlnet resizes control maps.

    Maps of few colours (segmentation) are resized nearest-neighbour; black-and-white maps are
    re-binarised (Otsu) after resizing, and thin-edge maps (canny) thinned again to one-pixel edges,
    so a map at another size still looks like what the detector draws.
    """
    import cv2

    if x.shape[0] == size[1] and x.shape[1] == size[0]:
        return x
    new_is_smaller = size[0] * size[1] < x.shape[0] * x.shape[1]
    new_is_bigger = size[0] * size[1] > x.shape[0] * x.shape[1]
    unique_colors = len(_unique_rows(x.reshape(-1, x.shape[2])))
    is_one_pixel_edge = False
    is_binary = False
    if unique_colors == 2:
        is_binary = bool(np.min(x) < 16 and np.max(x) > 240)
        if is_binary:
            kernel = np.ones(shape=(3, 3), dtype=np.uint8)
            opened = cv2.dilate(cv2.erode(x, kernel, iterations=1), kernel, iterations=1)
            one_pixel_edge_count = np.where(opened < x)[0].shape[0]
            all_edge_count = np.where(x > 127)[0].shape[0]
            is_one_pixel_edge = one_pixel_edge_count * 2 > all_edge_count
    if 2 < unique_colors < 200:
        interpolation = cv2.INTER_NEAREST
    elif new_is_smaller:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_CUBIC  # sd-webui-controlnet insists on cubic here (edges go through NMS)
    y = cv2.resize(x, size, interpolation=interpolation)
    if is_binary:
        y = np.mean(y.astype(np.float32), axis=2).clip(0, 255).astype(np.uint8)
        if is_one_pixel_edge:
            y = nake_nms(y)
            _, y = cv2.threshold(y, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            y = lvmin_thin(y, prunings=new_is_bigger)
        else:
            _, y = cv2.threshold(y, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        y = np.stack([y] * 3, axis=2)
    return y


def fit_control_map(control_map: Image.Image | np.ndarray, width: int, height: int, resize_mode: str) -> Image.Image:
    """The map at the job's width x height.

    just-resize stretches it; crop-and-resize scales it to cover the picture and crops the centre;
    resize-and-fill scales it to fit inside and fills the rest with the median colour of the map's
    border pixels (black for an edge map on black, white for a white-background one).
    """
    _check_mode(resize_mode)
    x = hwc3(control_map)
    if resize_mode == "just-resize":
        return Image.fromarray(np.ascontiguousarray(high_quality_resize(x, (width, height))))
    old_h, old_w = float(x.shape[0]), float(x.shape[1])
    k0 = float(height) / old_h
    k1 = float(width) / old_w
    if resize_mode == "resize-and-fill":
        k = min(k0, k1)
        borders = np.concatenate([x[0, :, :], x[-1, :, :], x[:, 0, :], x[:, -1, :]], axis=0)
        border_color = np.median(borders, axis=0).astype(x.dtype)
        canvas = np.tile(border_color[None, None], [height, width, 1])
        inner = high_quality_resize(x, (int(np.round(old_w * k)), int(np.round(old_h * k))))
        new_h, new_w, _ = inner.shape
        top = max(0, (height - new_h) // 2)
        left = max(0, (width - new_w) // 2)
        canvas[top:top + new_h, left:left + new_w] = inner
        return Image.fromarray(np.ascontiguousarray(canvas))
    k = max(k0, k1)
    outer = high_quality_resize(x, (int(np.round(old_w * k)), int(np.round(old_h * k))))
    new_h, new_w, _ = outer.shape
    top = max(0, (new_h - height) // 2)
    left = max(0, (new_w - width) // 2)
    return Image.fromarray(np.ascontiguousarray(outer[top:top + height, left:left + width]))
