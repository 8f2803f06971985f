"""A ControlNet unit's Preview: its preprocessor run on the picture exactly as a job runs it (`detect_map`),
at the job's width and height.

Preprocessors that need weights (depth, openpose, lineart models) run on the engine's worker, between
generations and on its device, as a job of its own (listed in the queue); the plain image operations
(canny, blur, recolor...) are cheap and run here, on the CPU.
"""

from __future__ import annotations

from pathlib import Path

from app.addons.controlnet import detect_map
from app.controlnet.preprocess import preprocessor
from app.ui.context import UIContext

PREVIEW_TIMEOUT = 600.0  # seconds a preview waits for the worker (a long job may be ahead of it)


def annotators_dir(settings) -> Path:
    """Where the preprocessors' weights are read from: the folder the engine's jobs read them from."""
    return Path(settings.models_dir) / "annotators"


def run_preview(context: UIContext, unit, picture, width: int, height: int, *, source: str = "ui"):
    """The detected map (PIL) of `picture` for `unit` (anything with ControlNetAddon's preprocessor fields)."""
    folder = annotators_dir(context.settings)
    engine = context.engine
    if not preprocessor(unit.module).needs_weights:
        return detect_map(unit, picture, width, height, folder)

    def detect():
        return detect_map(unit, picture, width, height, folder, device=engine.device.torch_device)

    job = engine.submit_call(detect, task="controlnet preview", source=source)
    return job.result(PREVIEW_TIMEOUT)
