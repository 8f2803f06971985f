"""The "ControlNet" accordion of txt2img, img2img and inpaint: `settings.controlnet_units` units in tabs, as
sd-webui-controlnet and Forge have them. The enabled units become the request's ControlNetAddons
(`addons`), read by name from the event's data like every other control of the tab.

Events: a control type filters the preprocessors and models and picks its default preprocessor; a
preprocessor shows its sliders (labelled and ranged as it says) and what weights it still lacks; a
union model shows its modes; Preview runs the preprocessor as the job would (`controlnet_preview`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from app.errors import EaselError
from app.ui.context import UIContext
from app.ui.controlnet_choices import (SLIDER_SLOTS, ModelOption, default_module, missing_note, model_names,
                                       model_options, module_choices, option_named, pick_model, slider_layout,
                                       union_choices, union_types)
from app.ui.controlnet_preview import annotators_dir, run_preview
from app.ui.controlnet_unit import UnitControls, build_unit


MAX_CONTROLNET_UNITS = 10  # Forge's limit for its ControlNet unit count


def unit_count(setting: int) -> int:
    """The units shown for `settings.controlnet_units`, kept within 1..MAX_CONTROLNET_UNITS (a hand-edited
    settings file may say anything)."""
    return min(max(int(setting), 1), MAX_CONTROLNET_UNITS)


@dataclass
class ControlNetControls:
    units: list[UnitControls]

    def inputs(self) -> set:
        return set().union(*(u.inputs() for u in self.units))

    def addons(self, data: dict, *, has_input_image: bool) -> list:
        """The enabled units as ControlNetAddons, in unit order (the infotext numbers them so)."""
        made = (u.addon(data, has_input_image=has_input_image) for u in self.units)
        return [addon for addon in made if addon is not None]


@dataclass(frozen=True)
class PreviewSource:
    """Where a unit that uses the input image finds it: the tab's component and how to read its value."""

    component: Any
    image_of: Callable[[Any], Any]


def build_controlnet_controls(prefix: str, count: int, *, takes_input_image: bool) -> ControlNetControls:
    units = []
    with gr.Accordion("ControlNet", open=False, elem_id=f"{prefix}_controlnet"):
        with gr.Tabs():
            for number in range(unit_count(count)):
                with gr.Tab(f"ControlNet Unit {number}", elem_id=f"{prefix}_cn{number}_tab"):
                    units.append(build_unit(prefix, number, takes_input_image=takes_input_image))
    return ControlNetControls(units)


def wire_controlnet(controls: ControlNetControls, context: UIContext, model: gr.Dropdown, width: gr.Slider,
                    height: gr.Slider, source: PreviewSource | None = None) -> None:
    """Connect every unit; `model` is the top bar's, whose family decides which ControlNets are listed."""
    handlers = ControlNetHandlers(context)
    for unit in controls.units:
        _wire_unit(unit, handlers, model, width, height, source)
    listed = {model, *(u.control_type for u in controls.units), *(u.model for u in controls.units)}

    def relist(data: dict) -> dict:
        """Every unit's models again for the model now selected (its family may differ)."""
        return {key: value for u in controls.units
                for key, value in handlers.models_update(u, data[model], data[u.control_type],
                                                         data[u.model]).items()}

    model.change(relist, inputs=listed, outputs=[c for u in controls.units for c in (u.model, u.union_type)],
                 show_progress="hidden", api_visibility="private")


def _wire_unit(unit: UnitControls, handlers: "ControlNetHandlers", model: gr.Dropdown, width: gr.Slider,
               height: gr.Slider, source: PreviewSource | None) -> None:
    private = dict(show_progress="hidden", api_visibility="private")
    sliders = [unit.resolution, unit.threshold_a, unit.threshold_b]
    picked = {model, unit.control_type, unit.model}

    def choice(data: dict) -> tuple:
        """The selected base model, the unit's control type and its ControlNet."""
        return data[model], data[unit.control_type], data[unit.model]

    unit.control_type.input(lambda data: handlers.type_update(unit, *choice(data)), inputs=picked,
                            outputs=[unit.module, unit.model, unit.union_type], **private)
    unit.module.change(lambda name, perfect: [*handlers.slider_updates(name, perfect, reset=True),
                                              handlers.missing(name)],
                       inputs=[unit.module, unit.pixel_perfect], outputs=[*sliders, unit.missing], **private)
    unit.pixel_perfect.change(lambda name, perfect: handlers.slider_updates(name, perfect, reset=False)[0],
                              inputs=[unit.module, unit.pixel_perfect], outputs=unit.resolution, **private)
    unit.model.input(lambda data: handlers.union_update(*choice(data)), inputs=picked, outputs=unit.union_type,
                     **private)
    unit.refresh.click(lambda data: handlers.models_update(unit, *choice(data), refresh=True), inputs=picked,
                       outputs=[unit.model, unit.union_type], api_visibility="private")
    if unit.use_input is not None:
        unit.use_input.change(lambda use: gr.update(visible=not use), inputs=unit.use_input, outputs=unit.image,
                              **private)
    preview_inputs = unit.inputs() | {unit.image, width, height} | ({source.component} if source else set())

    def preview(data: dict):
        picture = source.image_of(data[source.component]) if source and unit.uses_input_image(data) \
            else data[unit.image]
        return handlers.preview(unit, data, picture, int(data[width]), int(data[height]))

    unit.preview.click(preview, inputs=preview_inputs, outputs=unit.detected, api_visibility="private")


class ControlNetHandlers:
    """The accordion's event handlers over one UI's engine."""

    def __init__(self, context: UIContext):
        self.context = context

    def options(self, model_name: str | None, type_name: str, refresh: bool = False) -> list[ModelOption]:
        engine = self.context.engine
        try:
            catalog = engine.catalog(refresh)
        except EaselError:  # the models folder cannot be read: nothing to pick
            return []
        return model_options(catalog, engine.hash_cache, self.family_of(model_name), type_name)

    def family_of(self, model_name: str | None) -> str | None:
        """The selected model's family (its ControlNets only); None lists every family's."""
        try:
            return self.context.engine.resolve_model(model_name).family
        except (EaselError, ValueError):
            return None

    def models_update(self, unit: UnitControls, model_name: str | None, type_name: str, current: str | None,
                      refresh: bool = False) -> dict:
        options = self.options(model_name, type_name, refresh)
        chosen = pick_model(options, current, type_name)
        # the same model keeps its union mode as the user set it
        union = gr.update() if chosen == current else self._union(options, chosen)
        return {unit.model: gr.update(choices=model_names(options), value=chosen), unit.union_type: union}

    def type_update(self, unit: UnitControls, model_name: str | None, type_name: str, current: str | None) -> dict:
        """The type's preprocessors with its default picked, and its models (the current one kept)."""
        module = default_module(type_name)
        return {unit.module: gr.update(choices=module_choices(type_name), value=module),
                **self.models_update(unit, model_name, type_name, current)}

    def union_update(self, model_name: str | None, type_name: str, current: str | None):
        return self._union(self.options(model_name, type_name), current)

    @staticmethod
    def _union(options: list[ModelOption], chosen: str | None):
        types = union_types(option_named(options, chosen))
        if types is None:
            return gr.update(visible=False, value="")
        return gr.update(visible=True, choices=union_choices(types), value="")

    @staticmethod
    def slider_updates(module: str | None, pixel_perfect: bool, *, reset: bool) -> list:
        """The three sliders for a preprocessor; `reset` puts each at the preprocessor's default."""
        layout = slider_layout(module or "none", bool(pixel_perfect))
        updates = []
        for slot in SLIDER_SLOTS:
            spec = layout[slot]
            if spec is None:
                updates.append(gr.update(visible=False))
            elif reset:
                updates.append(gr.update(visible=True, label=spec.label, minimum=spec.minimum, maximum=spec.maximum,
                                         step=spec.step, value=spec.default))
            else:
                updates.append(gr.update(visible=True))
        return updates

    def missing(self, module: str | None) -> str:
        return missing_note(module or "none", annotators_dir(self.context.settings))

    def preview(self, unit: UnitControls, data: dict, picture, width: int, height: int):
        if picture is None:
            where = "an image into the tab" if unit.uses_input_image(data) else "a control image into the unit"
            raise gr.Error(f"{unit.name}: drop {where} first, then Preview.")
        try:
            return run_preview(self.context, unit.preview_unit(data), picture, width, height,
                               source=f"ui:{unit.name}")
        except (EaselError, TimeoutError) as exc:  # missing weights, a failed detector, a long queue
            raise gr.Error(f"{unit.name}: {exc}", duration=10) from None
