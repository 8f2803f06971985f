"""The bar above the tabs: model, preset, and the memory plan for that model on this device."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from app.ui.context import UIContext


@dataclass
class TopBar:
    model: gr.Dropdown
    refresh: gr.Button
    preset: gr.Dropdown
    memory: gr.HTML


def build_top_bar(context: UIContext) -> TopBar:
    with gr.Row(elem_classes=["top-bar"], equal_height=True):
        model = gr.Dropdown([], label="Checkpoint", scale=5, elem_id="top_model", allow_custom_value=True)
        refresh = gr.Button("↻", size="sm", min_width=40, scale=0, elem_id="top_refresh")
        names = list(context.presets)
        default = context.settings.default_preset if context.settings.default_preset in names else (names[0] if names else None)
        preset = gr.Dropdown(names, value=default, label="Preset", scale=2, elem_id="top_preset")
        with gr.Column(scale=3, min_width=260):
            memory = gr.HTML("<div class='memory'>detecting device…</div>", elem_id="top_memory", padding=False)
    return TopBar(model, refresh, preset, memory)


def memory_html(context: UIContext, model_name: str | None) -> str:
    device = context.engine.device
    try:
        entry = context.engine.resolve_model(model_name)
        plan = context.engine.memory_plan(entry).describe()
    except Exception as exc:  # no model: show the device alone
        plan = str(exc)
    return f"<div class='memory'><b>{device.kind.upper()}</b> {device.describe()}<br><span>{plan}</span></div>"
