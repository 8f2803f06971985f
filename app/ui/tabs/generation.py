"""The three generation tabs. They differ only in their inputs: none (txt2img), an image (img2img), an
image with a painted mask (inpaint). Each builds its request from named fields, never positions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from PIL import Image, ImageChops, ImageOps

from app.errors import InvalidRequest
from app.generation.request import validate_request
from app.ui.context import UIContext, size_for_aspect
from app.ui.controlnet_controls import (ControlNetControls, PreviewSource, build_controlnet_controls,
                                        wire_controlnet)
from app.ui.controls import GenerationControls, build_generation_controls
from app.ui.hires_controls import HiresControls, build_hires_controls
from app.ui.refine_controls import RefineControls, build_refine_controls
from app.ui.lora_picker import LoraPicker, build_lora_picker, wire_lora_picker
from app.ui.outpaint_controls import OutpaintControls, build_outpaint_controls
from app.ui.results import ResultsPanel, build_results_panel, stream_job, wire_cancel_buttons

RESIZE_MODES = [("Just resize", "just-resize"), ("Crop and resize", "crop-and-resize"),
                ("Resize and fill", "resize-and-fill")]
MASKED_CONTENT = [("original", "original"), ("fill", "fill"), ("latent noise", "latent-noise")]


@dataclass
class GenerationTab:
    task: str
    controls: GenerationControls
    results: ResultsPanel
    extra: dict[str, Any] = field(default_factory=dict)  # task-specific components by name
    hires: HiresControls | None = None  # txt2img's hires fix
    refine: RefineControls | None = None  # txt2img's refine with another model
    outpaint: OutpaintControls | None = None  # inpaint's outpaint mode
    controlnet: ControlNetControls | None = None


def build_generation_tab(task: str, context: UIContext, top) -> GenerationTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=6, elem_classes=["controls-column"]):
            extra: dict[str, Any] = {}
            pickers: list[LoraPicker] = []

            def between():  # under the prompt: the LoRA picker, then the task's image inputs
                pickers.append(build_lora_picker(task))
                extra.update(_task_inputs(task))

            controls = build_generation_controls(task, between=between)
            hires = build_hires_controls(task) if task == "txt2img" else None
            refine = build_refine_controls(task) if task == "txt2img" else None
            outpaint = build_outpaint_controls(task) if task == "inpaint" else None
            controlnet = build_controlnet_controls(task, context.settings.controlnet_units,
                                                   takes_input_image=task in INPUT_IMAGES)
        with gr.Column(scale=5, elem_classes=["results-column"]):
            results = build_results_panel(task)
    tab = GenerationTab(task, controls, results, extra, hires, refine, outpaint, controlnet)
    _wire(tab, context, top)
    wire_lora_picker(pickers[0], context, controls.prompt, top.model)
    source = INPUT_IMAGES.get(task)
    wire_controlnet(controlnet, context, top.model, controls.width, controls.height,
                    PreviewSource(extra[source[0]], source[1]) if source else None)
    return tab


def _task_inputs(task: str) -> dict[str, Any]:
    if task == "txt2img":
        return {}
    extra: dict[str, Any] = {}
    if task == "img2img":
        extra["image"] = gr.Image(label="Image for img2img", type="pil", image_mode="RGB", height=360,
                                  sources=["upload", "clipboard"], elem_id="img2img_image")
    else:
        extra["editor"] = gr.ImageEditor(
            label="Image · paint the area to repaint", type="pil", image_mode="RGBA", height=420,
            sources=["upload", "clipboard"], layers=False, transforms=[], elem_id="inpaint_editor",
            brush=gr.Brush(colors=["#ffffff"], color_mode="fixed", default_size=32))
    with gr.Row():
        extra["strength"] = gr.Slider(0, 1, value=0.75, step=0.01, label="Denoising strength", elem_id=f"{task}_strength")
        extra["resize_mode"] = gr.Radio(RESIZE_MODES, value="just-resize", label="Resize mode",
                                        elem_id=f"{task}_resize_mode")
    if task == "inpaint":
        with gr.Row():
            extra["mask_blur"] = gr.Slider(0, 64, value=4, step=1, label="Mask blur", elem_id="inpaint_mask_blur")
            extra["masked_content"] = gr.Radio(MASKED_CONTENT, value="original", label="Masked content",
                                               elem_id="inpaint_masked_content")
        with gr.Row():
            extra["inpaint_area"] = gr.Radio([("Whole picture", False), ("Only masked", True)], value=False,
                                             label="Inpaint area", elem_id="inpaint_area")
            extra["padding"] = gr.Slider(0, 256, value=32, step=4, label="Only masked padding, pixels",
                                         elem_id="inpaint_padding")
            extra["invert"] = gr.Checkbox(False, label="Invert mask", elem_id="inpaint_invert")
    return extra


def editor_image_and_mask(value) -> tuple[Image.Image | None, Image.Image | None]:
    """The background and the mask (alpha of the painted layers, white = repaint) of an ImageEditor value."""
    if not value or value.get("background") is None:
        return None, None
    background = value["background"].convert("RGB")
    mask = Image.new("L", background.size, 0)
    for layer in value.get("layers") or []:
        if layer is None:
            continue
        alpha = layer.convert("RGBA").getchannel("A")
        if alpha.size != mask.size:
            alpha = alpha.resize(mask.size)
        mask = ImageChops.lighter(mask, alpha)
    return background, mask


# The tabs with an input image: the component (in `extra`) and how its value gives the picture, which
# ControlNet units set to "Use the input image" preview.
INPUT_IMAGES = {"img2img": ("image", lambda value: value),
                "inpaint": ("editor", lambda value: editor_image_and_mask(value)[0])}


def _wire(tab: GenerationTab, context: UIContext, top) -> None:
    c, r, x = tab.controls, tab.results, tab.extra
    inputs = c.inputs() | set(x.values()) | {top.model, top.preset}
    for stage_controls in (tab.hires, tab.refine, tab.outpaint, tab.controlnet):
        if stage_controls is not None:
            inputs |= stage_controls.inputs()

    def request_fields(data: dict, *, refine_required: bool = False) -> dict:
        fields = c.request_fields(data, context, data[top.preset])
        fields.update(task=tab.task, model=data[top.model] or None, preview_every=context.preview_every)
        stages = [tab.hires.stage_fields(data) if tab.hires else None,
                  tab.refine.stage_fields(data, required=refine_required) if tab.refine else None]
        if any(stages):
            fields["stages"] = [stage for stage in stages if stage]
        if tab.controlnet is not None:
            fields["addons"] = tab.controlnet.addons(data, has_input_image=tab.task in INPUT_IMAGES)
        if tab.task == "img2img":
            fields.update(image=data[x["image"]], strength=float(data[x["strength"]]),
                          resize_mode=data[x["resize_mode"]])
            if fields["image"] is None:
                raise InvalidRequest("image", "drop an image into img2img first")
        elif tab.task == "inpaint":
            image, mask = editor_image_and_mask(data[x["editor"]])
            if image is None:
                raise InvalidRequest("image", "drop an image into inpaint first")
            outpaint = tab.outpaint.request_fields(data, image)
            if outpaint is not None:
                fields.update(outpaint, strength=float(data[x["strength"]]))
                return fields
            if mask.getbbox() is None and not data[x["invert"]]:
                raise InvalidRequest("mask", "paint over the area to repaint first")
            if data[x["invert"]]:
                mask = ImageOps.invert(mask)
            fields.update(image=image, mask=mask, strength=float(data[x["strength"]]),
                          resize_mode=data[x["resize_mode"]], mask_blur=int(data[x["mask_blur"]]),
                          masked_content=data[x["masked_content"]], inpaint_only_masked=bool(data[x["inpaint_area"]]),
                          inpaint_padding=int(data[x["padding"]]))
        return fields

    def make_request(data: dict):
        return validate_request(**request_fields(data))

    def make_final_request(data: dict):
        """The selected picture again from its seed, refined with the chosen model, in one job."""
        seeds, selected = data[r.seeds] or [], data[r.selected] or 0
        if not seeds:
            raise InvalidRequest("seed", "generate a picture first, then select the one to render")
        fields = request_fields(data, refine_required=True)
        fields.update(seed=seeds[selected if 0 <= selected < len(seeds) else 0], batch_count=1, batch_size=1)
        return validate_request(**fields)

    outputs = [r.progress, r.gallery, r.job_id, r.paths, r.infotexts, r.seeds, r.selected, r.infotext]
    r.generate.click(stream_job(context, r, make_request), inputs=inputs, outputs=outputs, concurrency_limit=None,
                     show_progress="hidden", api_name=tab.task)
    c.prompt.submit(stream_job(context, r, make_request), inputs=inputs, outputs=outputs, concurrency_limit=None,
                    show_progress="hidden", api_visibility="private")
    if tab.refine is not None:
        tab.refine.render_final.click(stream_job(context, r, make_final_request), inputs=inputs | {r.seeds, r.selected},
                                      outputs=outputs, concurrency_limit=None, show_progress="hidden",
                                      api_visibility="private")
    wire_cancel_buttons(r, context)
    c.reuse_seed.click(lambda seeds, i: seeds[i] if seeds and i < len(seeds) else -1, inputs=[r.seeds, r.selected],
                       outputs=c.seed, show_progress="hidden", api_visibility="private")
    for button, ratio in zip(c.aspect_buttons, _ratios()):
        button.click(lambda w, h, ratio=ratio: size_for_aspect(ratio, max(int(w), int(h))), inputs=[c.width, c.height],
                     outputs=[c.width, c.height], show_progress="hidden", api_visibility="private")
    c.prompt.change(lambda text: _token_html(context, text), inputs=[c.prompt],
                    outputs=c.token_counter, show_progress="hidden", queue=False, api_visibility="private")


def _ratios():
    from app.ui.context import ASPECT_RATIOS

    return list(ASPECT_RATIOS)


def _token_html(context: UIContext, text: str) -> str:
    from app.ui.controls import count_clip_tokens, token_counter_html

    return token_counter_html(count_clip_tokens(context.clip_tokenizer(), text or ""))
