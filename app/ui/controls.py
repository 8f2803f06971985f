"""The generation controls shared by txt2img, img2img and inpaint: prompt, sizes, steps, guidance, seed, batch.

Values reach event handlers as a dict keyed by component (Gradio's set-of-inputs form), and
`GenerationControls.request_fields` turns them into GenerationRequest keyword arguments by name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

import gradio as gr

from app.generation.tokens import CLIP_WINDOW, count_clip_tokens
from app.ui.context import ASPECT_RATIOS, UIContext



@dataclass
class GenerationControls:
    prompt: gr.Textbox
    token_counter: gr.HTML
    negative_prompt: gr.Textbox
    style: gr.Dropdown
    steps: gr.Slider
    cfg_scale: gr.Slider
    guidance: gr.Slider
    width: gr.Slider
    height: gr.Slider
    seed: gr.Number
    batch_count: gr.Slider
    batch_size: gr.Slider
    random_seed: gr.Button
    reuse_seed: gr.Button
    aspect_buttons: list[gr.Button]

    def inputs(self) -> set:
        return {self.prompt, self.negative_prompt, self.style, self.steps, self.cfg_scale, self.guidance, self.width,
                self.height, self.seed, self.batch_count, self.batch_size}

    def request_fields(self, data: dict, context: UIContext, preset_name: str | None) -> dict[str, Any]:
        prompt, negative = data[self.prompt] or "", data[self.negative_prompt] or ""
        preset = context.preset(preset_name)
        style = preset.style(data[self.style]) if preset else None
        if style:
            prompt, negative = style.apply(prompt, negative)
        return dict(
            prompt=prompt,
            negative_prompt=negative,
            steps=int(data[self.steps]),
            cfg_scale=float(data[self.cfg_scale]),
            guidance=float(data[self.guidance]),
            width=int(data[self.width]),
            height=int(data[self.height]),
            seed=int(data[self.seed]) if data[self.seed] is not None else -1,
            batch_count=int(data[self.batch_count]),
            batch_size=int(data[self.batch_size]),
            first_block_cache=preset.speed.first_block_cache if preset else None,  # None: the setting
        )

    def default_components(self) -> list:
        """The components a model or preset change sets (see `defaults_update`)."""
        return [self.steps, self.cfg_scale, self.guidance, self.width, self.height, self.negative_prompt, self.style]


def build_generation_controls(prefix: str, between: Callable[[], Any] | None = None) -> GenerationControls:
    """Prompt boxes, then whatever `between` builds (the task's image inputs), then the parameters."""
    with gr.Group():
        prompt = gr.Textbox(label="Prompt", lines=3, placeholder="Describe the picture", elem_id=f"{prefix}_prompt",
                            elem_classes=["prompt"])
        token_counter = gr.HTML(token_counter_html(0), elem_classes=["token-counter"], elem_id=f"{prefix}_tokens")
        negative_prompt = gr.Textbox(label="Negative prompt", lines=2, elem_id=f"{prefix}_negative",
                                     placeholder="What to avoid (SD3.5; FLUX ignores it unless CFG > 1)")
    if between is not None:
        between()
    style = gr.Dropdown(label="Style", choices=["None"], value="None", elem_id=f"{prefix}_style", allow_custom_value=True)
    with gr.Row():
        steps = gr.Slider(1, 150, value=4, step=1, label="Sampling steps", elem_id=f"{prefix}_steps")
        cfg_scale = gr.Slider(0, 30, value=1.0, step=0.5, label="CFG scale", elem_id=f"{prefix}_cfg")
        guidance = gr.Slider(0, 30, value=3.5, step=0.1, label="Distilled CFG scale", visible=False,
                             elem_id=f"{prefix}_guidance")
    with gr.Row(equal_height=True):
        with gr.Column(scale=4):
            width = gr.Slider(64, 4096, value=1024, step=16, label="Width", elem_id=f"{prefix}_width")
            height = gr.Slider(64, 4096, value=1024, step=16, label="Height", elem_id=f"{prefix}_height")
        with gr.Column(scale=1, min_width=160):
            with gr.Row(elem_classes=["aspect-buttons"]):
                aspect_buttons = [gr.Button(r, size="sm", min_width=40, elem_classes=["aspect"]) for r in ASPECT_RATIOS]
    with gr.Row(equal_height=True):
        seed = gr.Number(value=-1, label="Seed", precision=0, scale=4, elem_id=f"{prefix}_seed")
        random_seed = gr.Button("Random", size="sm", min_width=70, scale=0, elem_id=f"{prefix}_random_seed")
        reuse_seed = gr.Button("Reuse", size="sm", min_width=70, scale=0, elem_id=f"{prefix}_reuse_seed")
    with gr.Row():
        batch_count = gr.Slider(1, 100, value=1, step=1, label="Batch count", elem_id=f"{prefix}_batch_count")
        batch_size = gr.Slider(1, 16, value=1, step=1, label="Batch size", elem_id=f"{prefix}_batch_size")
    controls = GenerationControls(prompt, token_counter, negative_prompt, style, steps, cfg_scale, guidance, width,
                                  height, seed, batch_count, batch_size, random_seed, reuse_seed, aspect_buttons)
    random_seed.click(lambda: -1, outputs=seed, show_progress="hidden", api_visibility="private")
    return controls


def token_counter_html(count: int) -> str:
    """"n/77" as CLIP counts it, start and end markers included; `count` excludes them."""
    over = count > CLIP_WINDOW
    cls = "over" if over else ""
    note = f" · CLIP reads the first {CLIP_WINDOW}; T5 reads the rest" if over else ""
    return f'<span class="tokens {cls}" title="CLIP tokens">{count + 2 if count else 0}/{CLIP_WINDOW + 2}{note}</span>'


def defaults_update(controls: GenerationControls, context: UIContext, model_name: str | None,
                    preset_name: str | None) -> dict:
    """Control values for a model (its variant's defaults, the preset's, then the model's own) and
    which guidance control applies: FLUX dev and Fill have distilled guidance (Fill: 30), SD3.5 has CFG and a
    negative prompt."""
    try:
        entry = context.engine.resolve_model(model_name)
    except Exception:  # no model yet: leave the controls as they are
        return {}
    from app.families import family_for
    from app.families.base import read_folder_meta

    family = family_for(entry.family)
    base = family.defaults_for(entry.variant, entry.path)
    values = {"steps": base.steps, "cfg_scale": base.cfg_scale, "guidance": base.guidance or 3.5,
              "width": base.width, "height": base.height}
    preset = context.preset(preset_name)
    if preset:
        values.update(preset.defaults_for(entry.variant))
    values.update({k: v for k, v in (read_folder_meta(entry.path).get("defaults") or {}).items() if k in values})
    is_flux = entry.family == "flux"
    styles = ["None"] + ([s.name for s in preset.styles] if preset else [])
    return {
        controls.steps: gr.update(value=values["steps"]),
        controls.cfg_scale: gr.update(value=values["cfg_scale"],
                                      label="CFG scale (true CFG; 1 = off)" if is_flux else "CFG scale"),
        controls.guidance: gr.update(value=values["guidance"], visible=is_flux and base.guidance is not None),
        controls.width: gr.update(value=values["width"]),
        controls.height: gr.update(value=values["height"]),
        controls.negative_prompt: gr.update(visible=not is_flux),
        controls.style: gr.update(choices=styles, value="None"),
    }


def component_fields(obj) -> list:
    return [getattr(obj, f.name) for f in fields(obj)]
