"""Preprocessors without weights, each as sd-webui-controlnet computes it (OpenCV, same calls).

Each takes the input as uint8 [h, w, 3] RGB and returns the map as uint8 [h, w] or [h, w, 3].
"""

from __future__ import annotations

import numpy as np

from app.controlnet.annotators.base import AnnotatorCall
from app.controlnet.preprocess_sizing import hwc3, resize_with_pad


def identity(image: np.ndarray, call: AnnotatorCall) -> np.ndarray:
    """none: the picture itself is the control map."""
    return image


def canny(image: np.ndarray, call: AnnotatorCall) -> np.ndarray:
    """Canny edges of the picture at the preprocessor resolution; thresholds truncated to integers."""
    import cv2

    padded, remove_pad = resize_with_pad(image, call.resolution)
    edges = cv2.Canny(padded, int(call.threshold_a), int(call.threshold_b))
    return remove_pad(cv2.cvtColor(edges, cv2.COLOR_GRAY2RGB))


def tile_resample(image: np.ndarray, call: AnnotatorCall) -> np.ndarray:
    """The picture at its own size divided by the down sampling rate (rates below 1.1 leave it as is)."""
    import cv2

    rate = float(call.threshold_a)
    if rate < 1.1:
        return image
    h, w, _ = image.shape
    return cv2.resize(image, (int(float(w) / rate), int(float(h) / rate)), interpolation=cv2.INTER_AREA)


def blur_gaussian(image: np.ndarray, call: AnnotatorCall) -> np.ndarray:
    """The picture at the preprocessor resolution, blurred with a Gaussian of the given sigma."""
    import cv2

    padded, remove_pad = resize_with_pad(image, call.resolution)
    return cv2.GaussianBlur(remove_pad(padded), (0, 0), float(call.threshold_a))


def invert(image: np.ndarray, call: AnnotatorCall) -> np.ndarray:
    """Black lines on white made white lines on black, the form line and edge models take."""
    return 255 - hwc3(image)


def _gamma_gray(channel: np.ndarray, gamma: float) -> np.ndarray:
    import cv2

    x = channel.astype(np.float32) / 255.0
    x = x ** float(gamma)
    return cv2.cvtColor((x * 255.0).clip(0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)


def recolor_luminance(image: np.ndarray, call: AnnotatorCall) -> np.ndarray:
    """The L of CIELAB, gamma corrected, as gray.

    sd-webui-controlnet converts its RGB array with OpenCV's BGR-to-Lab, so red and blue trade their
    weights in L; done the same way here so maps match the extension's pixel for pixel.
    """
    import cv2

    return _gamma_gray(cv2.cvtColor(hwc3(image), cv2.COLOR_BGR2LAB)[:, :, 0], call.threshold_a)


def recolor_intensity(image: np.ndarray, call: AnnotatorCall) -> np.ndarray:
    """The V of HSV (the largest of R, G, B), gamma corrected, as gray."""
    import cv2

    return _gamma_gray(cv2.cvtColor(hwc3(image), cv2.COLOR_BGR2HSV)[:, :, 2], call.threshold_a)


def lineart_standard(image: np.ndarray, call: AnnotatorCall) -> np.ndarray:
    """Dark lines on a light picture found as where it is darker than its blur (sigma 6), white on
    black, scaled by the median line strength."""
    import cv2

    padded, remove_pad = resize_with_pad(image, call.resolution)
    x = padded.astype(np.float32)
    g = cv2.GaussianBlur(x, (0, 0), 6.0)
    intensity = np.min(g - x, axis=2).clip(0, 255)
    strong = intensity[intensity > 8]
    # no line at all: the reference's median is nan there, and max(16, nan) is 16
    intensity /= max(16, np.median(strong)) if strong.size else 16
    intensity *= 127
    return remove_pad(intensity.clip(0, 255).astype(np.uint8))
