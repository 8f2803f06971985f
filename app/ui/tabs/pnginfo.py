"""PNG Info: what an image says about how it was made (Easel's, A1111/Forge's, ComfyUI's chunks)."""

from __future__ import annotations

import html
import json

import gradio as gr
from PIL import Image, UnidentifiedImageError

from app.generation.infotext import Infotext, read_image_metadata


def read_parameters(path: str | None) -> tuple[str, Infotext | None]:
    """(HTML description, parsed infotext or None) for an image file."""
    if not path:
        return "", None
    try:
        with Image.open(path) as im:
            meta = read_image_metadata(im)
    except (UnidentifiedImageError, OSError) as exc:
        return f"<div class='warn'>Not a readable image: {html.escape(str(exc))}</div>", None
    parts = []
    if meta.infotext:
        info = meta.infotext
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in info.params.items())
        parts.append(f"<h4>Prompt</h4><p>{html.escape(info.prompt)}</p>")
        if info.negative_prompt:
            parts.append(f"<h4>Negative prompt</h4><p>{html.escape(info.negative_prompt)}</p>")
        parts.append(f"<table class='params'>{rows}</table>")
    if meta.comfy_prompt:
        parts.append("<h4>ComfyUI prompt (workflow graph)</h4><pre>"
                     + html.escape(json.dumps(meta.comfy_prompt, indent=1)[:6000]) + "</pre>")
    if not parts:
        extra = ", ".join(meta.raw) or "none"
        parts.append(f"<div class='warn'>No generation parameters found (text chunks: {html.escape(extra)}).</div>")
    return "".join(parts), meta.infotext


def build_pnginfo_tab() -> dict:
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            image = gr.Image(label="Source", type="filepath", sources=["upload", "clipboard"], height=420,
                             elem_id="pnginfo_image")
        with gr.Column(scale=6):
            info_html = gr.HTML("", elem_id="pnginfo_html")
            raw = gr.Textbox(label="Parameters", lines=5, interactive=False, buttons=["copy"], elem_id="pnginfo_text")
            send = gr.Button("Send to txt2img", variant="primary", elem_id="pnginfo_send_txt2img")
            parsed = gr.State(None)

    def on_image(path):
        text_html, info = read_parameters(path)
        from app.generation.infotext import format_infotext

        return text_html, (format_infotext(info) if info else ""), info

    image.change(on_image, inputs=image, outputs=[info_html, raw, parsed], show_progress="hidden", api_name="png_info")
    return {"image": image, "send": send, "parsed": parsed}
