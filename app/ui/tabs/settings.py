"""Settings tab: saved to the settings file and applied when Easel starts next."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app.generation.outputs import OutputStore
from app.settings import save_settings_file
from app.ui.context import UIContext


def build_settings_tab(context: UIContext) -> dict:
    s = context.settings
    gr.Markdown("Saved to the settings file and applied on restart (the preview frequency applies at once).")
    with gr.Row():
        outputs_dir = gr.Textbox(str(s.outputs_dir), label="Output folder", elem_id="settings_outputs_dir")
        pattern = gr.Textbox(s.filename_pattern, label="File name pattern",
                             info="[number] [seed] [model_name] [date] [datetime] [prompt_words]",
                             elem_id="settings_pattern")
    with gr.Row():
        preview_every = gr.Slider(0, 20, value=s.preview_every, step=1, label="Live preview every N steps (0: off)",
                                  elem_id="settings_preview_every")
        default_preset = gr.Dropdown(["(none)"] + list(context.presets), value=s.default_preset or "(none)",
                                     label="Default preset", elem_id="settings_default_preset")
    with gr.Accordion("Memory (GPU)", open=True):
        with gr.Row():
            vram = gr.Radio([("Auto", "auto"), ("--medvram", "medvram"), ("--lowvram", "lowvram")],
                            value="lowvram" if s.lowvram else "medvram" if s.medvram else "auto", label="VRAM mode",
                            elem_id="settings_vram")
            precision = gr.Radio([("Auto", "auto"), ("--force-fp16", "fp16"), ("--no-half", "fp32")],
                                 value="fp16" if s.force_fp16 else "fp32" if s.no_half else "auto", label="Precision",
                                 elem_id="settings_precision")
            offload = gr.Dropdown(["auto", "none", "model", "group", "sequential"], value=s.offload, label="Offload",
                                  elem_id="settings_offload")
    save = gr.Button("Apply settings", variant="primary", elem_id="settings_save")
    status = gr.Markdown("", elem_id="settings_status")

    def apply(data):
        try:
            OutputStore(Path(data[outputs_dir]), data[pattern])  # checks the pattern tokens
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        from app.runtime.memory import MemoryOverrides

        try:
            MemoryOverrides.from_flags(lowvram=data[vram] == "lowvram", medvram=data[vram] == "medvram",
                                       force_fp16=data[precision] == "fp16", no_half=data[precision] == "fp32",
                                       offload=data[offload])
        except ValueError as exc:  # saved as is, the next start would refuse these settings
            raise gr.Error(str(exc)) from None
        context.preview_every = int(data[preview_every])
        values = {
            "outputs_dir": data[outputs_dir], "filename_pattern": data[pattern],
            "preview_every": int(data[preview_every]),
            "default_preset": None if data[default_preset] == "(none)" else data[default_preset],
            "lowvram": data[vram] == "lowvram", "medvram": data[vram] == "medvram",
            "force_fp16": data[precision] == "fp16", "no_half": data[precision] == "fp32", "offload": data[offload],
        }
        path = save_settings_file(s.settings_file, values)
        return f"Saved to `{path}`. Restart Easel to apply the folder, pattern and memory settings."

    save.click(apply, inputs={outputs_dir, pattern, preview_every, default_preset, vram, precision, offload},
               outputs=status, api_name="settings_save")
    return {"save": save, "status": status}
