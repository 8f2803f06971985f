"""One ControlNet unit's controls (a tab of the ControlNet accordion), as sd-webui-controlnet lays a unit
out, and the request's ControlNetAddon its values make (`addon`), read by name from the event's data."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import gradio as gr
from pydantic import ValidationError

from app.controlnet.preprocess import preprocessor
from app.errors import InvalidRequest
from app.generation.request import ControlNetAddon, invalid_request_from
from app.ui.controlnet_choices import (ALL_TYPES, CONTROL_MODE_CHOICES, DEFAULT_RESIZE_MODE, FROM_PREPROCESSOR,
                                       NO_MODEL, RESIZE_MODE_CHOICES, control_type_names, module_choices)


@dataclass
class UnitControls:
    number: int  # "ControlNet Unit N", and N of the infotext's "ControlNet N" when the units before are on
    enable: gr.Checkbox
    use_input: gr.Checkbox | None  # img2img / inpaint: the unit reads the job's input image
    image: gr.Image
    mask: gr.Image
    image_value: gr.State  # the image's and mask's values, which the request reads (see `build_unit`)
    mask_value: gr.State
    detected: gr.Image  # the preview of the detected map
    preview: gr.Button
    control_type: gr.Radio
    module: gr.Dropdown
    missing: gr.Markdown  # which weights the preprocessor still needs
    model: gr.Dropdown
    refresh: gr.Button
    union_type: gr.Dropdown  # a union model's mode, shown only for union models
    weight: gr.Slider
    guidance_start: gr.Slider
    guidance_end: gr.Slider
    control_mode: gr.Radio
    resize_mode: gr.Radio
    pixel_perfect: gr.Checkbox
    resolution: gr.Slider
    threshold_a: gr.Slider
    threshold_b: gr.Slider
    save_map: gr.Checkbox

    @property
    def name(self) -> str:
        return f"ControlNet Unit {self.number}"

    def inputs(self) -> set:
        """What a request or a preview reads of this unit."""
        values = {self.enable, self.image_value, self.mask_value, self.module, self.model, self.union_type, self.weight,
                  self.guidance_start, self.guidance_end, self.control_mode, self.resize_mode,
                  self.pixel_perfect, self.resolution, self.threshold_a, self.threshold_b, self.save_map}
        return values | ({self.use_input} if self.use_input is not None else set())

    def uses_input_image(self, data: dict) -> bool:
        return self.use_input is not None and bool(data[self.use_input])

    def settings(self, data: dict) -> dict[str, Any]:
        """The preprocessor and how the unit acts, as ControlNetAddon fields: a slider the preprocessor does
        not show sends None (its default), as the extension's API does."""
        module = preprocessor(data[self.module] or "none")
        return dict(
            module=module.name,
            weight=float(data[self.weight]),
            guidance_start=float(data[self.guidance_start]),
            guidance_end=float(data[self.guidance_end]),
            control_mode=data[self.control_mode],
            resize_mode=data[self.resize_mode],
            pixel_perfect=bool(data[self.pixel_perfect]),
            processor_res=int(data[self.resolution]) if module.resolution else 512,
            threshold_a=float(data[self.threshold_a]) if module.threshold_a else None,
            threshold_b=float(data[self.threshold_b]) if module.threshold_b else None,
            control_type=data[self.union_type] or "",
            save_detected_map=bool(data[self.save_map]),
        )

    def preview_unit(self, data: dict) -> SimpleNamespace:
        """What `detect_map` reads of a unit, without the model a request needs."""
        return SimpleNamespace(**self.settings(data))

    def addon(self, data: dict, *, has_input_image: bool) -> ControlNetAddon | None:
        """The unit as a request add-on; None when it is off. An enabled unit without a model or without
        a picture to read is an InvalidRequest naming the unit, before the engine sees the request."""
        if not data[self.enable]:
            return None
        model = data[self.model]
        if not model or model == NO_MODEL:
            raise InvalidRequest(self.name, "choose a ControlNet model for the unit (or untick Enable)")
        image = None if self.uses_input_image(data) else data[self.image_value]
        if image is None and not has_input_image:
            raise InvalidRequest(self.name, "drop a control image into the unit: txt2img has no input image "
                                            "for it to use")
        mask = data[self.mask_value]
        try:
            return ControlNetAddon(model=model, image=image, mask=mask.convert("L") if mask is not None else None,
                                   **self.settings(data))
        except ValidationError as exc:
            problem = invalid_request_from(exc)
            raise InvalidRequest(self.name, f"{problem.field}: {problem.message}") from None


def build_unit(prefix: str, number: int, *, takes_input_image: bool) -> UnitControls:
    """The unit's components, laid out as Forge's unit: the pictures, Enable, the control type, then
    Preprocessor [Preview] Model [Refresh], then the weights, schedule and modes. The events are wired by
    `controlnet_controls`.

    Requests read the pictures from States the pictures copy themselves into: an empty image as an input
    would be a required argument of the tab's API endpoint, breaking every client that passes only the
    earlier controls (States are not part of the endpoint)."""
    p = f"{prefix}_cn{number}"
    with gr.Row(equal_height=True):
        image = gr.Image(label="Control image", type="pil", image_mode="RGB", height=260,
                         sources=["upload", "clipboard"], visible=not takes_input_image, elem_id=f"{p}_image")
        detected = gr.Image(label="Preprocessor preview", type="pil", height=260, interactive=False,
                            elem_id=f"{p}_detected")
    with gr.Accordion("Mask (optional): white where the unit acts", open=False):
        mask = gr.Image(label="Mask", type="pil", image_mode="L", height=200, sources=["upload", "clipboard"],
                        elem_id=f"{p}_mask")
    with gr.Row(equal_height=True):
        enable = gr.Checkbox(False, label="Enable", elem_id=f"{p}_enable", min_width=100)
        use_input = gr.Checkbox(True, label="Use the input image", elem_id=f"{p}_use_input",
                                min_width=160) if takes_input_image else None
        pixel_perfect = gr.Checkbox(False, label="Pixel Perfect", elem_id=f"{p}_pixel_perfect", min_width=120)
        save_map = gr.Checkbox(False, label="Save detected map", elem_id=f"{p}_save_map", min_width=160)
    control_type = gr.Radio(control_type_names(), value=ALL_TYPES, label="Control Type", elem_id=f"{p}_type")
    with gr.Row(equal_height=True):
        module = gr.Dropdown(module_choices(ALL_TYPES), value="none", label="Preprocessor", scale=3,
                             elem_id=f"{p}_module")
        preview = gr.Button("Preview", size="sm", scale=0, min_width=80, elem_id=f"{p}_preview")
        model = gr.Dropdown([NO_MODEL], value=NO_MODEL, label="Model", scale=3, elem_id=f"{p}_model")
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=80, elem_id=f"{p}_refresh")
        union_type = gr.Dropdown([FROM_PREPROCESSOR], value="", label="Union control type", visible=False,
                                 scale=2, elem_id=f"{p}_union_type")
    missing = gr.Markdown("", elem_id=f"{p}_missing", elem_classes=["warn"])
    with gr.Row():
        weight = gr.Slider(0, 2, value=1, step=0.05, label="Control Weight", elem_id=f"{p}_weight")
        guidance_start = gr.Slider(0, 1, value=0, step=0.01, label="Starting Control Step",
                                   elem_id=f"{p}_guidance_start")
        guidance_end = gr.Slider(0, 1, value=1, step=0.01, label="Ending Control Step", elem_id=f"{p}_guidance_end")
    with gr.Row():
        resolution = gr.Slider(64, 2048, value=512, step=8, label="Preprocessor Resolution", visible=False,
                               elem_id=f"{p}_resolution")
        threshold_a = gr.Slider(0, 1, value=0, label="Threshold A", visible=False, elem_id=f"{p}_threshold_a")
        threshold_b = gr.Slider(0, 1, value=0, label="Threshold B", visible=False, elem_id=f"{p}_threshold_b")
    control_mode = gr.Radio(CONTROL_MODE_CHOICES, value="balanced", label="Control Mode", elem_id=f"{p}_control_mode")
    resize_mode = gr.Radio(RESIZE_MODE_CHOICES, value=DEFAULT_RESIZE_MODE, label="Resize Mode",
                           elem_id=f"{p}_resize_mode")
    image_value, mask_value = gr.State(None), gr.State(None)
    for picture, value in ((image, image_value), (mask, mask_value)):
        picture.change(lambda v: v, inputs=picture, outputs=value, queue=False, show_progress="hidden",
                       api_visibility="private")
    return UnitControls(number, enable, use_input, image, mask, image_value, mask_value, detected, preview, control_type, module, missing,
                        model, refresh, union_type, weight, guidance_start, guidance_end, control_mode, resize_mode,
                        pixel_perfect, resolution, threshold_a, threshold_b, save_map)
