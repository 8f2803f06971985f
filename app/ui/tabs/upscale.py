"""Upscale tab: an upscaler (Lanczos or a model file) and an optional tile-by-tile diffusion refine."""

from __future__ import annotations

import gradio as gr

from app.errors import EaselError
from app.ui.context import UIContext


def upscaler_names(context: UIContext) -> list[str]:
    return [u.name for u in context.engine.upscalers()]


def build_upscale_tab(context: UIContext, top) -> dict:
    with gr.Row(equal_height=False):
        with gr.Column(scale=6):
            image = gr.Image(label="Image to upscale", type="pil", image_mode="RGB", height=380,
                             sources=["upload", "clipboard"], elem_id="upscale_image")
            with gr.Row():
                upscaler = gr.Dropdown(["Lanczos"], value="Lanczos", label="Upscaler", elem_id="upscale_upscaler",
                                       allow_custom_value=True)
                scale = gr.Slider(1, 8, value=2, step=0.25, label="Scale by", elem_id="upscale_scale")
            with gr.Accordion("Refine with diffusion (tiled img2img)", open=False):
                refine = gr.Checkbox(False, label="Refine after upscaling", elem_id="upscale_refine")
                prompt = gr.Textbox(label="Prompt for the refine pass", lines=2, elem_id="upscale_prompt")
                with gr.Row():
                    strength = gr.Slider(0.05, 0.6, value=0.25, step=0.01, label="Denoising strength")
                    steps = gr.Slider(1, 60, value=8, step=1, label="Steps")
                with gr.Row():
                    tile = gr.Slider(256, 2048, value=1024, step=64, label="Tile size")
                    overlap = gr.Slider(0, 256, value=64, step=16, label="Tile overlap")
        with gr.Column(scale=5):
            run = gr.Button("Upscale", variant="primary", size="lg", elem_id="upscale_run")
            status = gr.HTML("<div class='progress idle'>Ready</div>", elem_id="upscale_status")
            output = gr.Image(label="Result", type="filepath", format="png", interactive=False, height=480,
                              elem_id="upscale_output")

    def do_upscale(data, progress=gr.Progress()):
        from app.upscale.registry import upscale

        src = data[image]
        if src is None:
            raise gr.Error("Drop an image to upscale first.")
        try:
            result = upscale(src, data[upscaler], scale=float(data[scale]), upscalers=context.engine.upscalers())
            note = f"{data[upscaler]}: {src.width}x{src.height} → {result.width}x{result.height}"
            if data[refine]:
                from app.upscale.refine import refine_tiled

                result = refine_tiled(
                    result, lambda req: context.engine.generate(req), prompt=data[prompt] or "", model=data[top.model] or None,
                    strength=float(data[strength]), steps=int(data[steps]), seed=0, tile=int(data[tile]),
                    overlap=int(data[overlap]), on_tile=lambda i, n: progress((i, n), desc=f"refining tile {i + 1}/{n}"))
                note += f" · refined in tiles of {int(data[tile])} px"
            path = context.engine.save_extra(result, task="extras", infotext=f"Postprocess upscaler: {data[upscaler]}, "
                                             f"Postprocess upscale by: {data[scale]}")
        except EaselError as exc:
            raise gr.Error(str(exc)) from None
        return {output: str(path), status: f"<div class='progress done'>{note}</div>"}

    run.click(do_upscale, inputs={image, upscaler, scale, refine, prompt, strength, steps, tile, overlap, top.model},
              outputs=[output, status], concurrency_limit=None, api_name="upscale")
    return {"image": image, "upscaler": upscaler, "output": output}
