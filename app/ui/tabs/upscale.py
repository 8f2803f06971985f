"""Upscale tab: an upscaler (Lanczos or a model file) and an optional tile-by-tile diffusion refine: one
engine job (the tiled upscale stage), in the queue, in /progress and interruptible."""

from __future__ import annotations

import gradio as gr

from app.engine.jobs import JobNotFound
from app.errors import EaselError
from app.generation.request import validate_request
from app.ui.context import UIContext
from app.ui.results import job_changes, progress_html


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
            with gr.Row():
                run = gr.Button("Upscale", variant="primary", size="lg", elem_id="upscale_run", scale=3)
                interrupt = gr.Button("Interrupt", elem_id="upscale_interrupt", scale=1, min_width=80)
            status = gr.HTML(progress_html(None), elem_id="upscale_status")
            output = gr.Image(label="Result", type="filepath", format="png", interactive=False, height=480,
                              elem_id="upscale_output")
    job_id = gr.State(None)

    def refine_request(data: dict, source):
        """One job: the input upscaled as it is (img2img at strength 0), then refined tile by tile."""
        stage = {"kind": "tiled_upscale", "upscaler": data[upscaler], "scale": float(data[scale]),
                 "tile_width": int(data[tile]), "tile_height": int(data[tile]), "overlap": int(data[overlap]),
                 "strength": float(data[strength])}
        return validate_request(task="img2img", image=source, strength=0, prompt=data[prompt] or "",
                                model=data[top.model] or None, steps=int(data[steps]), stages=[stage])

    async def do_upscale(data):
        from app.upscale.registry import upscale

        src = data[image]
        if src is None:
            raise gr.Error("Drop an image to upscale first.")
        note = f"{data[upscaler]}: {src.width}x{src.height} → "
        try:
            if not data[refine]:
                result = upscale(src, data[upscaler], scale=float(data[scale]), upscalers=context.engine.upscalers())
                path = context.engine.save_extra(result, task="extras", infotext=f"Postprocess upscaler: "
                                                 f"{data[upscaler]}, Postprocess upscale by: {data[scale]}")
                yield {output: str(path), status: f"<div class='progress done'>{note}{result.width}x{result.height}</div>"}
                return
            job = context.engine.submit(refine_request(data, src), source="ui:upscale")
        except EaselError as exc:
            raise gr.Error(str(exc)) from None
        yield {job_id: job.id, status: progress_html(job, context.engine.queue_position(job))}
        async for _ in job_changes(job):
            yield {status: progress_html(job, context.engine.queue_position(job))}
        try:
            done = job.result()
        except EaselError as exc:
            yield {status: progress_html(job, -1)}
            raise gr.Error(str(exc)) from None
        job.release()
        if not done.images:
            yield {status: progress_html(job, -1)}
            return
        picture = str(done.paths[0]) if done.paths and done.paths[0] else done.images[0]  # the saved file first
        size = done.images[0].size
        stopped = " · interrupted: the tiles done are laid over the upscaled picture" if done.interrupted else ""
        yield {output: picture,
               status: f"<div class='progress done'>{note}{size[0]}x{size[1]} · refined in tiles of "
                       f"{int(data[tile])} px in {done.seconds:.1f} s{stopped}</div>"}

    def stop(current):
        try:
            context.engine.cancel(current)
        except JobNotFound:  # finished already, or nothing started
            pass

    run.click(do_upscale, inputs={image, upscaler, scale, refine, prompt, strength, steps, tile, overlap, top.model},
              outputs=[output, status, job_id], concurrency_limit=None, api_name="upscale")
    interrupt.click(stop, inputs=[job_id], outputs=None, show_progress="hidden", queue=False, api_visibility="private")
    return {"image": image, "upscaler": upscaler, "output": output}
