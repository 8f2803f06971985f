"""Settings tab: saved to the settings file and applied when Easel starts next.

When the UI is reachable from other machines (--listen, --share) without
--enable-insecure-extension-access, the settings that change folders or how Easel runs (the output
folder, VRAM mode, precision, offload) are read-only here, as installing extensions is: anyone who
reaches the page could otherwise point the outputs anywhere or change the next start. The file name
pattern (it only names files inside the output folder), the live preview frequency, the default
preset and the number of ControlNet units stay open to everyone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from app.extensions.gate import INSECURE_FLAG, LOCAL, ChangeGate
from app.generation.outputs import OutputStore
from app.settings import Settings, save_settings_file
from app.settings_file import SettingsFileError
from app.ui.context import UIContext
from app.ui.controlnet_controls import MAX_CONTROLNET_UNITS, unit_count

# Saved settings that change folders or flags, with the words that name them to the user.
GUARDED = {"outputs_dir": "the output folder", "lowvram": "the VRAM mode", "medvram": "the VRAM mode",
           "force_fp16": "the precision", "no_half": "the precision", "offload": "offload"}


class SettingsLocked(ValueError):
    """A guarded setting was changed from a UI that others can reach."""


def form_values(settings: Settings) -> dict[str, Any]:
    """The guarded settings as the tab shows them for `settings` (what "unchanged" means)."""
    vram = "lowvram" if settings.lowvram else "medvram" if settings.medvram else "auto"
    precision = "fp16" if settings.force_fp16 else "fp32" if settings.no_half else "auto"
    return {"outputs_dir": str(settings.outputs_dir), "lowvram": vram == "lowvram", "medvram": vram == "medvram",
            "force_fp16": precision == "fp16", "no_half": precision == "fp32", "offload": settings.offload}


def settings_to_save(settings: Settings, values: dict[str, Any], gate: ChangeGate) -> dict[str, Any]:
    """What may be written of `values`: all of them on this machine; behind a closed gate only the open
    settings, and SettingsLocked naming what was changed if a guarded one differs from the current."""
    if gate.allow_changes:
        return values
    current = form_values(settings)
    changed = dict.fromkeys(label for key, label in GUARDED.items() if key in values and values[key] != current[key])
    if changed:
        raise SettingsLocked(
            f"Nothing saved: {_join(list(changed))} can only be changed on this machine while the UI is reachable "
            f"from other machines. Restart with {INSECURE_FLAG} to change it here, or edit {settings.settings_file} "
            "on this machine. The file name pattern, live preview and default preset can be saved here.")
    return {key: value for key, value in values.items() if key not in GUARDED}


def _join(labels: list[str]) -> str:
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def build_settings_tab(context: UIContext, gate: ChangeGate = LOCAL) -> dict:
    s = context.settings
    shown = form_values(s)
    locked = not gate.allow_changes
    gr.Markdown("Saved to the settings file and applied on restart (the preview frequency applies at once).")
    if locked:
        gr.Markdown(f"🔒 The UI is reachable from other machines: the output folder and the memory settings are "
                    f"read-only here (restart with `{INSECURE_FLAG}` to change them).", elem_id="settings_locked")
    with gr.Row():
        outputs_dir = gr.Textbox(shown["outputs_dir"], label="Output folder", elem_id="settings_outputs_dir",
                                 interactive=not locked)
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
                            value="lowvram" if shown["lowvram"] else "medvram" if shown["medvram"] else "auto",
                            label="VRAM mode",
                            elem_id="settings_vram", interactive=not locked)
            precision = gr.Radio([("Auto", "auto"), ("--force-fp16", "fp16"), ("--no-half", "fp32")],
                                 value="fp16" if shown["force_fp16"] else "fp32" if shown["no_half"] else "auto",
                                 label="Precision",
                                 elem_id="settings_precision", interactive=not locked)
            offload = gr.Dropdown(["auto", "none", "model", "group", "sequential"], value=s.offload, label="Offload",
                                  elem_id="settings_offload", interactive=not locked)
    # made after the memory controls: the settings_save endpoint's earlier inputs keep their places
    controlnet_units = gr.Slider(1, MAX_CONTROLNET_UNITS, value=unit_count(s.controlnet_units), step=1,
                                 label="ControlNet units per tab (takes effect on restart)",
                                 elem_id="settings_controlnet_units")
    block_cache = gr.Slider(0, 0.5, value=s.first_block_cache, step=0.01,
                            label="First Block Cache threshold (0: off; jobs of 10 steps or more; on restart)",
                            elem_id="settings_first_block_cache")
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
        values = {
            "outputs_dir": data[outputs_dir], "filename_pattern": data[pattern],
            "preview_every": int(data[preview_every]),
            "default_preset": None if data[default_preset] == "(none)" else data[default_preset],
            "lowvram": data[vram] == "lowvram", "medvram": data[vram] == "medvram",
            "force_fp16": data[precision] == "fp16", "no_half": data[precision] == "fp32", "offload": data[offload],
        }
        if int(data[controlnet_units]) != s.controlnet_units:  # untouched, the file keeps following the default
            values["controlnet_units"] = int(data[controlnet_units])
        if float(data[block_cache]) != s.first_block_cache:
            values["first_block_cache"] = float(data[block_cache])
        try:
            values = settings_to_save(s, values, gate)
        except SettingsLocked as exc:
            raise gr.Error(str(exc)) from None
        context.preview_every = values["preview_every"]
        try:
            path = save_settings_file(s.settings_file, values)
        except SettingsFileError as exc:
            raise gr.Error(str(exc)) from None
        return (f"Saved to `{path}`. Restart Easel to apply the folder, pattern, ControlNet units, First Block Cache "
                "and memory settings.")

    save.click(apply, inputs={outputs_dir, pattern, preview_every, default_preset, controlnet_units, vram, precision,
                              offload, block_cache},
               outputs=status, api_name="settings_save")
    return {"save": save, "status": status}
