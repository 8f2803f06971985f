"""Edge thinning for resized edge maps, as sd-webui-controlnet's `lvminthin.py` (Lvmin Zhang, 2023).

A one-pixel edge map (canny) scaled up becomes blurred, then binarised, lines several pixels wide;
non-maximum suppression and hit-or-miss thinning bring them back to one pixel, as the map a
detector would have drawn at that size.
"""

from __future__ import annotations

import numpy as np

_KERNELS_RAW = (
    ((-1, -1, -1), (0, 1, 0), (1, 1, 1)),
    ((0, -1, -1), (1, 1, -1), (0, 1, 0)),
)
_PRUNINGS_RAW = (
    ((-1, -1, -1), (-1, 1, -1), (0, 0, -1)),
    ((-1, -1, -1), (-1, 1, -1), (-1, 0, 0)),
)


def _rotations(raw) -> list[np.ndarray]:
    """Each pattern turned by 0, 90, 180 and 270 degrees, in the reference's order."""
    arrays = [np.array(r, dtype=np.int32) for r in raw]
    return [np.rot90(a, k=k, axes=(0, 1)) for k in range(4) for a in arrays]


def _thin_once(x: np.ndarray, kernels: list[np.ndarray]) -> tuple[np.ndarray, bool]:
    import cv2

    done = True
    for kernel in kernels:
        hits = np.where(cv2.morphologyEx(x, cv2.MORPH_HITMISS, kernel) > 127)
        x[hits] = 0
        if hits[0].shape[0] > 0:
            done = False
    return x, done


def lvmin_thin(x: np.ndarray, prunings: bool = True) -> np.ndarray:
    """Thin a binary uint8 map (0/255) to one-pixel lines; `prunings` also cuts one-pixel spurs."""
    y = x
    for _ in range(32):
        y, done = _thin_once(y, _rotations(_KERNELS_RAW))
        if done:
            break
    if prunings:
        y, _ = _thin_once(y, _rotations(_PRUNINGS_RAW))
    return y


def nake_nms(x: np.ndarray) -> np.ndarray:
    """Keep a pixel where it is the maximum along one of four directions (no blur first)."""
    import cv2

    lines = (
        ((0, 0, 0), (1, 1, 1), (0, 0, 0)),
        ((0, 1, 0), (0, 1, 0), (0, 1, 0)),
        ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
        ((0, 0, 1), (0, 1, 0), (1, 0, 0)),
    )
    y = np.zeros_like(x)
    for line in lines:
        np.putmask(y, cv2.dilate(x, kernel=np.array(line, dtype=np.uint8)) == x, x)
    return y
