"""txt2img's "Refine with another model" accordion: iterate with a fast model (FLUX schnell), then render
the chosen picture's seed with a better one (dev) in one click, or refine every picture as it is made.

The draft is made again from the same seed and controls, then denoised by the refining model `strength`
of its schedule, in one job (the engine's refine stage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.errors import InvalidRequest


@dataclass
class RefineControls:
    always: gr.Checkbox
    model: gr.Dropdown
    strength: gr.Slider
    steps: gr.Slider
    render_final: gr.Button

    def inputs(self) -> set:
        return {self.always, self.model, self.strength, self.steps}

    def stage_fields(self, data: dict, *, required: bool = False) -> dict[str, Any] | None:
        """The refine stage's fields; None when it is off (and not `required`, as Render final is)."""
        if not (required or data[self.always]):
            return None
        if not data[self.model]:
            raise InvalidRequest("refine model", "choose the model to refine with first")
        return dict(kind="refine", model=data[self.model], strength=float(data[self.strength]),
                    steps=int(data[self.steps]))


def build_refine_controls(prefix: str) -> RefineControls:
    with gr.Accordion("Refine with another model", open=False, elem_id=f"{prefix}_refine"):
        with gr.Row():
            model = gr.Dropdown([], value="", label="Refine with", allow_custom_value=True,
                                elem_id=f"{prefix}_refine_model")
            strength = gr.Slider(0.05, 1, value=0.35, step=0.01, label="Refine strength",
                                 elem_id=f"{prefix}_refine_strength")
            steps = gr.Slider(0, 150, value=0, step=1, label="Refine steps (0: the model's default)",
                              elem_id=f"{prefix}_refine_steps")
        with gr.Row():
            always = gr.Checkbox(False, label="Refine every picture", elem_id=f"{prefix}_refine_always")
            render_final = gr.Button("Render final with it (selected picture's seed)", size="sm",
                                     elem_id=f"{prefix}_render_final")
    return RefineControls(always, model, strength, steps, render_final)
