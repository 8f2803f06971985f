"""txt2img's "Hires. fix" accordion (A1111/Forge): upscale the first pass and denoise it again.

The controls make the request's hires stage by name (`stage_fields`), and a picture's infotext sets
them back (`infotext_update`: the Hires keys turn it on with their values; a picture without them
turns it off, as pasting parameters does in A1111).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.engine.stages import LATENT_MODES
from app.generation.infotext import Infotext

DEFAULT_UPSCALER = ("Model's default", "")  # FLUX: Lanczos (its latents upscale badly); SD3.5: Latent


def upscaler_choices(pixel_upscalers: list[str]) -> list[tuple[str, str]]:
    """The model's default, A1111's latent modes, then the pixel upscalers (Lanczos, model files)."""
    return [DEFAULT_UPSCALER, *((name, name) for name in LATENT_MODES), *((name, name) for name in pixel_upscalers)]


@dataclass
class HiresControls:
    enable: gr.Checkbox
    upscaler: gr.Dropdown
    scale: gr.Slider
    steps: gr.Slider
    strength: gr.Slider
    resize_x: gr.Slider
    resize_y: gr.Slider

    def inputs(self) -> set:
        return {self.enable, self.upscaler, self.scale, self.steps, self.strength, self.resize_x, self.resize_y}

    def stage_fields(self, data: dict) -> dict[str, Any] | None:
        """The hires stage's fields, or None when the fix is off."""
        if not data[self.enable]:
            return None
        return dict(kind="hires", upscaler=data[self.upscaler] or "", scale=float(data[self.scale]),
                    steps=int(data[self.steps]), strength=float(data[self.strength]),
                    resize_x=int(data[self.resize_x]), resize_y=int(data[self.resize_y]))

    def infotext_update(self, info: Infotext) -> dict:
        p = info.params
        if "Hires upscale" not in p and "Hires resize" not in p:
            return {self.enable: False}
        update: dict = {self.enable: True}
        numbers = (("Hires upscale", self.scale, float), ("Hires steps", self.steps, int),
                   ("Denoising strength", self.strength, float))
        for key, comp, cast in numbers:
            try:
                update[comp] = cast(p[key])
            except (KeyError, ValueError):
                pass
        width, _, height = p.get("Hires resize", "").partition("x")
        if width.isdigit() and height.isdigit():
            update[self.resize_x], update[self.resize_y] = int(width), int(height)
        else:
            update[self.resize_x], update[self.resize_y] = 0, 0
        if "Hires upscaler" in p:
            update[self.upscaler] = p["Hires upscaler"]
        return update

    def components(self) -> list:
        return [self.enable, self.upscaler, self.scale, self.steps, self.strength, self.resize_x, self.resize_y]


def build_hires_controls(prefix: str) -> HiresControls:
    with gr.Accordion("Hires. fix", open=False, elem_id=f"{prefix}_hires"):
        enable = gr.Checkbox(False, label="Upscale and denoise again after the first pass",
                             elem_id=f"{prefix}_enable_hr")
        with gr.Row():
            upscaler = gr.Dropdown(upscaler_choices(["Lanczos"]), value="", label="Upscaler",
                                   allow_custom_value=True, elem_id=f"{prefix}_hr_upscaler")
            steps = gr.Slider(0, 150, value=0, step=1, label="Hires steps (0: same as sampling)",
                              elem_id=f"{prefix}_hires_steps")
            strength = gr.Slider(0, 1, value=0.7, step=0.01, label="Denoising strength",
                                 elem_id=f"{prefix}_denoising_strength")
        with gr.Row():
            scale = gr.Slider(1, 4, value=2, step=0.05, label="Upscale by", elem_id=f"{prefix}_hr_scale")
            resize_x = gr.Slider(0, 4096, value=0, step=16, label="Resize width to (0: by scale)",
                                 elem_id=f"{prefix}_hr_resize_x")
            resize_y = gr.Slider(0, 4096, value=0, step=16, label="Resize height to (0: by scale)",
                                 elem_id=f"{prefix}_hr_resize_y")
    return HiresControls(enable, upscaler, scale, steps, strength, resize_x, resize_y)
