"""Assemble the web UI: the top bar, the tabs, and the wiring between them (send-to, PNG Info -> txt2img)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from PIL import Image

from app.extensions.facade import EaselFacade
from app.extensions.gate import LOCAL, ChangeGate
from app.extensions.ui import build_extension_tabs, build_extensions_tab, build_ui_sections, generation_tab_handle
from app.generation.infotext import Infotext
from app.ui.context import UIContext
from app.ui.controlnet_controls import ControlNetHandlers
from app.ui.controls import defaults_update
from app.ui.hires_controls import upscaler_choices
from app.ui.queue_panel import build_queue_panel
from app.ui.tabs.generation import GenerationTab, build_generation_tab
from app.ui.tabs.models import build_models_tab
from app.ui.tabs.pnginfo import build_pnginfo_tab
from app.ui.tabs.settings import build_settings_tab
from app.ui.tabs.upscale import build_upscale_tab, upscaler_names
from app.ui.topbar import build_top_bar, memory_html

CSS_FILE = Path(__file__).with_name("style.css")
TAB_IDS = ("txt2img", "img2img", "inpaint", "upscale", "pnginfo", "models", "settings", "extensions")


def build_ui(context: UIContext, extensions=None, gate: ChangeGate = LOCAL) -> gr.Blocks:
    """The whole UI. `extensions` (an ExtensionManager) adds sections, tabs and the Extensions tab;
    `gate` says whether that tab may change the install (not when others can reach the UI). Events that
    only wire the page together are private: off /gradio_api/info and out of reach of Gradio clients."""
    easel = EaselFacade(context.engine, context.settings, context.presets)
    with gr.Blocks(title="Easel") as ui:
        top = build_top_bar(context)
        with gr.Tabs(elem_id="tabs") as tabs:
            gen: dict[str, GenerationTab] = {}
            for task in ("txt2img", "img2img", "inpaint"):
                with gr.Tab(task, id=task, elem_id=f"tab_{task}"):
                    gen[task] = build_generation_tab(task, context, top)
                    if extensions is not None:
                        build_ui_sections(extensions, generation_tab_handle(task, gen[task], top.model, easel))
            with gr.Tab("Upscale", id="upscale", elem_id="tab_upscale"):
                upscale = build_upscale_tab(context, top)
            with gr.Tab("PNG Info", id="pnginfo", elem_id="tab_pnginfo"):
                pnginfo = build_pnginfo_tab()
            with gr.Tab("Models", id="models", elem_id="tab_models"):
                models = build_models_tab(context)
            with gr.Tab("Settings", id="settings", elem_id="tab_settings"):
                build_settings_tab(context, gate)
            if extensions is not None:
                build_extension_tabs(extensions, easel)
                with gr.Tab("Extensions", id="extensions", elem_id="tab_extensions"):
                    build_extensions_tab(extensions, gate)
        build_queue_panel(context)
        if context.preset_errors:
            gr.Markdown("\n".join(f"⚠️ preset skipped: {e}" for e in context.preset_errors))
        _wire_models(ui, context, top, gen, upscale, models)
        _wire_send_to(tabs, gen, upscale)
        _wire_pnginfo(tabs, pnginfo, gen["txt2img"], ControlNetHandlers(context), top.model)
    return ui


def _wire_models(ui, context: UIContext, top, gen: dict[str, GenerationTab], upscale: dict, models: dict) -> None:
    default_outputs = [comp for t in gen.values() for comp in t.controls.default_components()]
    hires, refine_model = gen["txt2img"].hires, gen["txt2img"].refine.model

    def apply_defaults(model_name, preset_name):
        update = {top.memory: memory_html(context, model_name)}
        for t in gen.values():
            update.update(defaults_update(t.controls, context, model_name, preset_name))
        return update

    def on_load(preset_name):
        choices = context.model_choices()
        try:
            current = context.engine.resolve_model(None).name
        except Exception:  # nothing ready: leave the dropdown empty
            current = None
        pixel = upscaler_names(context)
        update = {top.model: gr.update(choices=choices, value=current),
                  upscale["upscaler"]: gr.update(choices=pixel, value="Lanczos"),
                  hires.upscaler: gr.update(choices=upscaler_choices(pixel)),
                  refine_model: gr.update(choices=choices)}
        update.update(apply_defaults(current, preset_name))
        update.update(models["load"]())
        return update

    def on_refresh(model_name):
        choices = context.model_choices(refresh=True)
        names = [name for _, name in choices]
        return (gr.update(choices=choices, value=model_name if model_name in names else (names[0] if names else None)),
                gr.update(choices=choices))

    load_outputs = [top.model, top.memory, upscale["upscaler"], hires.upscaler, refine_model, models["table"],
                    models["device"], *default_outputs]
    ui.load(on_load, inputs=top.preset, outputs=load_outputs, api_visibility="private")
    top.refresh.click(on_refresh, inputs=top.model, outputs=[top.model, refine_model], api_visibility="private")
    for trigger in (top.model.input, top.preset.input):
        trigger(apply_defaults, inputs=[top.model, top.preset], outputs=[top.memory, *default_outputs],
                api_visibility="private")


def _selected_image(paths: list[str], index: int):
    if not paths:
        raise gr.Error("Generate an image first.")
    if index >= len(paths):  # the detected maps follow the pictures in the gallery
        raise gr.Error("A ControlNet detected map is selected: select a generated picture to send it.")
    path = paths[index if 0 <= index < len(paths) else 0]
    if not path:
        raise gr.Error("That image could not be saved, so it cannot be sent; see the warning above the gallery.")
    with Image.open(path) as im:
        return im.convert("RGB")


def _wire_send_to(tabs, gen: dict[str, GenerationTab], upscale: dict) -> None:
    for t in gen.values():
        r = t.results
        r.send_img2img.click(lambda p, i: (_selected_image(p, i), gr.Tabs(selected="img2img")),
                             inputs=[r.paths, r.selected], outputs=[gen["img2img"].extra["image"], tabs],
                             api_visibility="private")
        r.send_inpaint.click(lambda p, i: ({"background": _selected_image(p, i), "layers": [], "composite": None},
                                           gr.Tabs(selected="inpaint")),
                             inputs=[r.paths, r.selected], outputs=[gen["inpaint"].extra["editor"], tabs],
                             api_visibility="private")
        r.send_upscale.click(lambda p, i: (_selected_image(p, i), gr.Tabs(selected="upscale")),
                             inputs=[r.paths, r.selected], outputs=[upscale["image"], tabs],
                             api_visibility="private")
        # the prompt travels with the picture, as in Forge
        for target in ("img2img", "inpaint"):
            if target != t.task:
                button = r.send_img2img if target == "img2img" else r.send_inpaint
                button.click(lambda prompt, neg: (prompt, neg), inputs=[t.controls.prompt, t.controls.negative_prompt],
                             outputs=[gen[target].controls.prompt, gen[target].controls.negative_prompt],
                             api_visibility="private")


def _wire_pnginfo(tabs, pnginfo: dict, txt2img: GenerationTab, handlers, top_model) -> None:
    """"Send to txt2img": the infotext's prompt, settings, hires fix and ControlNet units (the top bar's model
    decides which ControlNets are listed)."""
    c = txt2img.controls

    def send(info: Infotext | None, model: str | None):
        if info is None:
            raise gr.Error("No parameters to send: drop an image with generation parameters first.")
        units = txt2img.controlnet.infotext_update(info, handlers, model) if txt2img.controlnet else {}
        return {**infotext_to_controls(info, c), **txt2img.hires.infotext_update(info), **units,
                tabs: gr.Tabs(selected="txt2img")}

    units = txt2img.controlnet.pasted() if txt2img.controlnet else []
    pnginfo["send"].click(send, inputs=[pnginfo["parsed"], top_model],
                          outputs=[c.prompt, c.negative_prompt, c.steps, c.cfg_scale, c.guidance, c.width, c.height,
                                   c.seed, *txt2img.hires.components(), *units, tabs], api_visibility="private")


def infotext_to_controls(info: Infotext, c) -> dict:
    """Every txt2img field the infotext knows (A1111/Forge keys), leaving the others as they are."""
    p = info.params
    update = {c.prompt: info.prompt, c.negative_prompt: info.negative_prompt}

    def number(key, cast=float):
        try:
            return cast(p[key])
        except (KeyError, ValueError):
            return None

    for key, comp, cast in (("Steps", c.steps, int), ("CFG scale", c.cfg_scale, float),
                            ("Distilled CFG Scale", c.guidance, float), ("Seed", c.seed, int)):
        value = number(key, cast)
        if value is not None:
            update[comp] = value
    size = p.get("Size", "")
    if "x" in size:
        try:
            w, h = (int(v) for v in size.split("x", 1))
            update[c.width], update[c.height] = w, h
        except ValueError:
            pass
    return update
