"""The "ControlNet" accordion of txt2img, img2img and inpaint: `settings.controlnet_units` units in tabs, as
sd-webui-controlnet and Forge have them. The enabled units become the request's ControlNetAddons
(`addons`), read by name from the event's data like every other control of the tab.

Events: a control type filters the preprocessors and models and picks its default preprocessor; a
preprocessor shows its sliders (labelled and ranged as it says) and what weights it still lacks; a
union model shows its modes; Preview runs the preprocessor as the job would (`controlnet_preview`).
PNG Info's "Send to txt2img" fills unit N from the infotext's "ControlNet N" (`infotext_update`), as the
extension pastes its units; the control pictures are not in an infotext, so they stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from app.errors import EaselError
from app.ui.context import UIContext
from app.ui.controlnet_choices import (ALL_TYPES, NO_MODEL, SLIDER_SLOTS, ModelOption, default_module,
                                       missing_note, model_names, model_options, module_choices, option_named,
                                       pick_model, slider_layout, union_choices, union_types)
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
    accordion: Any = None  # opened when an infotext's units are pasted

    def inputs(self) -> set:
        return set().union(*(u.inputs() for u in self.units))

    def addons(self, data: dict, *, has_input_image: bool) -> list:
        """The enabled units as ControlNetAddons, in unit order (the infotext numbers them so)."""
        made = (u.addon(data, has_input_image=has_input_image) for u in self.units)
        return [addon for addon in made if addon is not None]

    def infotext_update(self, info, handlers: "ControlNetHandlers", model_name: str | None) -> dict:
        """Unit N set from the infotext's N-th ControlNet entry, the units after the last entry disabled."""
        from app.generation.infotext_controlnet import parse_controlnet_units

        entries = parse_controlnet_units(info.params)
        update: dict = {self.accordion: gr.update(open=True)} if entries and self.accordion is not None else {}
        for index, unit in enumerate(self.units):
            update.update(handlers.paste_update(unit, entries[index] if index < len(entries) else None, model_name))
        return update

    def pasted(self) -> list:
        """The components `infotext_update` sets."""
        return [self.accordion] * (self.accordion is not None) + [c for u in self.units for c in (u.enable, u.control_type, u.module, u.missing, u.model, u.union_type,
                                                u.weight, u.guidance_start, u.guidance_end, u.control_mode,
                                                u.resize_mode, u.pixel_perfect, u.resolution, u.threshold_a,
                                                u.threshold_b)]


@dataclass(frozen=True)
class PreviewSource:
    """Where a unit that uses the input image finds it: the tab's component and how to read its value."""

    component: Any
    image_of: Callable[[Any], Any]


def build_controlnet_controls(prefix: str, count: int, *, takes_input_image: bool) -> ControlNetControls:
    units = []
    with gr.Accordion("ControlNet", open=False, elem_id=f"{prefix}_controlnet") as accordion:
        with gr.Tabs():
            for number in range(unit_count(count)):
                with gr.Tab(f"ControlNet Unit {number}", elem_id=f"{prefix}_cn{number}_tab"):
                    units.append(build_unit(prefix, number, takes_input_image=takes_input_image))
    return ControlNetControls(units, accordion)


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

    # the user's picks reset the sliders; a pasted infotext sets them itself (`paste_update`)
    unit.control_type.input(lambda data: handlers.type_update(unit, *choice(data), perfect=data[unit.pixel_perfect]),
                            inputs=picked | {unit.pixel_perfect},
                            outputs=[unit.module, unit.model, unit.union_type, *sliders, unit.missing], **private)
    unit.module.input(lambda name, perfect: [*handlers.slider_updates(name, perfect, reset=True),
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

    def type_update(self, unit: UnitControls, model_name: str | None, type_name: str, current: str | None,
                    perfect: bool = False) -> dict:
        """The type's preprocessors with its default picked (its sliders at their defaults), and its models
        (the current one kept)."""
        module = default_module(type_name)
        sliders = dict(zip((unit.resolution, unit.threshold_a, unit.threshold_b),
                           self.slider_updates(module, perfect, reset=True)))
        return {unit.module: gr.update(choices=module_choices(type_name), value=module), **sliders,
                unit.missing: self.missing(module), **self.models_update(unit, model_name, type_name, current)}

    def paste_update(self, unit: UnitControls, entry: dict | None, model_name: str | None) -> dict:
        """The unit as an infotext's ControlNet entry (parse_controlnet_units) says, under "All" types; the
        model matched by name whatever its hash ("None" when it is not here: the unit then says to pick
        one); no entry: the unit is disabled."""
        from app.addons.controlnet import without_listed_hash
        from app.controlnet.preprocess import preprocessor

        if entry is None:
            return {unit.enable: False}
        try:
            module = preprocessor(str(entry.get("module", "none"))).name
        except EaselError:
            module = "none"
        options = self.options(model_name, ALL_TYPES)
        wanted = without_listed_hash(str(entry.get("model", ""))).lower()
        option = next((o for o in options if without_listed_hash(o.name).lower() == wanted), None)
        perfect = bool(entry.get("pixel_perfect", False))
        values = {"resolution": entry.get("processor_res"), "threshold_a": entry.get("threshold_a"),
                  "threshold_b": entry.get("threshold_b")}
        sliders = {}
        for slot, spec in slider_layout(module, perfect).items():
            component = getattr(unit, slot)
            value = values[slot] if values[slot] is not None else getattr(spec, "default", None)
            sliders[component] = gr.update(visible=False) if spec is None else gr.update(
                visible=True, label=spec.label, minimum=spec.minimum, maximum=spec.maximum, step=spec.step,
                value=min(max(value, spec.minimum), spec.maximum))
        union = self._union(options, option.name if option else None)
        if union_types(option) is not None:
            union = gr.update(visible=True, choices=union_choices(union_types(option)),
                              value=entry.get("control_type", "") if entry.get("control_type") in union_types(option)
                              else "")
        plain = {"weight": unit.weight, "guidance_start": unit.guidance_start, "guidance_end": unit.guidance_end,
                 "control_mode": unit.control_mode, "resize_mode": unit.resize_mode}
        return {unit.enable: True, unit.control_type: ALL_TYPES, unit.pixel_perfect: perfect,
                unit.module: gr.update(choices=module_choices(ALL_TYPES), value=module),
                unit.missing: self.missing(module),
                unit.model: gr.update(choices=model_names(options), value=option.name if option else NO_MODEL),
                unit.union_type: union, **sliders,
                **{component: entry[field] for field, component in plain.items() if field in entry}}

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
