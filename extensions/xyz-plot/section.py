"""The X/Y/Z plot accordion under txt2img: three axes (type + values) and a button."""

from __future__ import annotations

import gradio as gr

from app.generation.request import validate_request

from .axes import AXIS_TYPES, make_axis
from .plot import make_xyz_plot

NOTHING = "Nothing"
REQUEST_FIELDS = ("prompt", "negative_prompt", "steps", "cfg_scale", "width", "height", "seed")


def build_section(tab) -> None:
    c = tab.components
    kinds = [NOTHING, *AXIS_TYPES]
    axes = []
    for letter, default in (("X", "Seed"), ("Y", "Steps"), ("Z", NOTHING)):
        with gr.Row():
            kind = gr.Dropdown(kinds, value=default, label=f"{letter} type", scale=1)
            values = gr.Textbox(label=f"{letter} values", placeholder="1-5  ·  1,2,3  ·  a, b", scale=3)
        axes += [kind, values]
    run = gr.Button("Make X/Y/Z plot", variant="primary")
    status = gr.Markdown()
    grids = gr.Gallery(label="X/Y/Z grids", format="png", columns=1, height="auto")
    fields = [c[name] for name in REQUEST_FIELDS if name in c]
    model = c.get("model")

    def plot(*values):
        axis_values = values[:6]
        request_values = dict(zip([n for n in REQUEST_FIELDS if n in c], values[6:6 + len(fields)]))
        chosen = values[-1] if model is not None else None
        try:
            made = [make_axis(k, v) if k != NOTHING and (v or "").strip() else None
                    for k, v in zip(axis_values[::2], axis_values[1::2])]
            if made[0] is None:
                raise ValueError("choose an X axis and its values")
            request = validate_request(**_numbers(request_values), model=chosen or None)
            result = make_xyz_plot(tab.easel, request, made[0], made[1], made[2])
        except Exception as exc:  # shown to the user; the app goes on
            raise gr.Error(str(exc)) from None
        saved = ", ".join(str(p) for p in result.grid_paths)
        stopped = " (interrupted)" if result.interrupted else ""
        return result.grids, f"{len(result.images)} images{stopped}" + (f"; grids saved: {saved}" if saved else "")

    inputs = [*axes, *fields] + ([model] if model is not None else [])
    run.click(plot, inputs=inputs, outputs=[grids, status], api_visibility="private")


def _numbers(values: dict) -> dict:
    out = dict(values)
    for key in ("steps", "width", "height", "seed"):
        if out.get(key) is not None:
            out[key] = int(out[key])
    if out.get("cfg_scale") is not None:
        out["cfg_scale"] = float(out["cfg_scale"])
    return out
