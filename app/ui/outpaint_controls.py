"""Inpaint's "Outpaint" accordion: extend the picture on chosen sides and inpaint the new area (A1111's
outpainting scripts, as a mode of inpaint). The painted mask is not used while it is on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.generation.outpaint import DIRECTIONS, Outpaint, outpaint_fields


@dataclass
class OutpaintControls:
    enable: gr.Checkbox
    directions: gr.CheckboxGroup
    pixels: gr.Slider
    feather: gr.Slider

    def inputs(self) -> set:
        return {self.enable, self.directions, self.pixels, self.feather}

    def request_fields(self, data: dict, image) -> dict[str, Any] | None:
        """The inpaint request's canvas, mask and size; None when outpaint is off."""
        if not data[self.enable]:
            return None
        outpaint = Outpaint.towards(data[self.directions] or [], int(data[self.pixels]), int(data[self.feather]))
        return outpaint_fields(image, outpaint)


def build_outpaint_controls(prefix: str) -> OutpaintControls:
    with gr.Accordion("Outpaint", open=False, elem_id=f"{prefix}_outpaint"):
        with gr.Row():
            enable = gr.Checkbox(False, label="Outpaint (extend the picture; the painted mask is not used)",
                                 elem_id=f"{prefix}_outpaint_enable")
            directions = gr.CheckboxGroup(list(DIRECTIONS), value=["right"], label="Directions",
                                          elem_id=f"{prefix}_outpaint_directions")
        with gr.Row():
            pixels = gr.Slider(8, 1024, value=128, step=8, label="Pixels to expand", elem_id=f"{prefix}_outpaint_pixels")
            feather = gr.Slider(0, 128, value=16, step=1, label="Feather into the new area, pixels",
                                elem_id=f"{prefix}_outpaint_feather")
    return OutpaintControls(enable, directions, pixels, feather)
