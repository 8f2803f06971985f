"""The ControlNet accordion without a browser: a unit's values -> the request's ControlNetAddon, what a
control type lists (preprocessors, models) and picks, the sliders each preprocessor shows, the weights a
preprocessor still needs, and the detected maps' captions in the gallery."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from app.errors import InvalidRequest
from app.generation.request import ControlNetAddon, validate_request
from app.ui.controlnet_choices import (NO_MODEL, default_module, missing_note, model_names, model_options,
                                       module_choices, option_named, pick_model, slider_layout, union_types)
from app.ui.controlnet_controls import ControlNetControls, ControlNetHandlers
from app.ui.controlnet_unit import UnitControls
from app.ui.results import detected_map_captions

PICTURE = Image.new("RGB", (64, 48), "blue")


def unit(number: int = 0, *, takes_input_image: bool = False) -> UnitControls:
    """A unit whose components are their own field names (the event data is keyed by them)."""
    names = {f.name: f"{number}.{f.name}" for f in fields(UnitControls) if f.name != "number"}
    if not takes_input_image:
        names["use_input"] = None
    return UnitControls(number=number, **names)


def values(u: UnitControls, **changes) -> dict:
    """What the unit's components hold when the user enabled it with a canny ControlNet and a picture."""
    given = dict(enable=True, use_input=False, image_value=PICTURE, mask_value=None, module="canny", model="cn-canny [0123abcd]",
                 union_type="", weight=0.8, guidance_start=0.1, guidance_end=0.9, control_mode="prompt",
                 resize_mode="just-resize", pixel_perfect=False, resolution=640, threshold_a=50, threshold_b=150,
                 save_map=True)
    given.update(changes)
    return {getattr(u, name): value for name, value in given.items() if getattr(u, name) is not None}


def test_an_enabled_unit_becomes_the_controlnet_addon_of_its_values():
    u = unit()
    addon = u.addon(values(u), has_input_image=False)
    assert addon == ControlNetAddon(model="cn-canny [0123abcd]", module="canny", image=PICTURE, weight=0.8,
                                    guidance_start=0.1, guidance_end=0.9, control_mode="prompt",
                                    resize_mode="just-resize", processor_res=640, threshold_a=50.0,
                                    threshold_b=150.0, save_detected_map=True)
    assert u.addon(values(u, enable=False), has_input_image=False) is None


def test_sliders_the_preprocessor_does_not_show_send_its_defaults():
    u = unit()
    tile = u.addon(values(u, module="tile_resample", threshold_a=2.0), has_input_image=False)
    assert (tile.processor_res, tile.threshold_a, tile.threshold_b) == (512, 2.0, None)
    plain = u.addon(values(u, module="none"), has_input_image=False)
    assert (plain.module, plain.processor_res, plain.threshold_a, plain.threshold_b) == ("none", 512, None, None)
    by_label = u.addon(values(u, module="lineart_standard (from white bg & black line)"), has_input_image=False)
    assert by_label.module == "lineart_standard"  # the name is sent, whatever the dropdown shows


def test_use_the_input_image_leaves_the_units_image_to_the_job():
    u = unit(takes_input_image=True)
    assert u.addon(values(u, use_input=True), has_input_image=True).image is None
    assert u.addon(values(u, use_input=False), has_input_image=True).image is PICTURE
    assert u.addon(values(u, use_input=False, image_value=None), has_input_image=True).image is None


def test_an_enabled_unit_without_a_picture_on_txt2img_says_so_by_its_name():
    u = unit(2)
    with pytest.raises(InvalidRequest, match="ControlNet Unit 2: drop a control image into the unit"):
        u.addon(values(u, image_value=None), has_input_image=False)
    with pytest.raises(InvalidRequest, match="ControlNet Unit 2: choose a ControlNet model"):
        u.addon(values(u, model=NO_MODEL), has_input_image=False)
    with pytest.raises(InvalidRequest, match="ControlNet Unit 2: guidance_start"):
        u.addon(values(u, guidance_start=0.9, guidance_end=0.2), has_input_image=False)


def test_the_units_make_the_requests_addons_in_order_and_off_ones_are_left_out():
    units = [unit(0), unit(1), unit(2)]
    data = {**values(units[0], model="first"), **values(units[1], enable=False),
            **values(units[2], model="third", mask_value=Image.new("RGB", (64, 48), "white"))}
    addons = ControlNetControls(units).addons(data, has_input_image=False)
    assert [a.model for a in addons] == ["first", "third"]
    assert addons[1].mask.mode == "L"
    request = validate_request(task="txt2img", prompt="a square", addons=addons)
    assert [a.kind for a in request.addons] == ["controlnet", "controlnet"]


def test_a_control_type_lists_its_preprocessors_and_picks_its_default():
    assert [name for _, name in module_choices("Canny")] == ["none", "canny", "invert"]
    assert default_module("Canny") == "canny" and default_module("Depth") == "depth_anything_v2"
    assert default_module("All") == "none" and len(module_choices("All")) > len(module_choices("Tile"))
    labels = dict(module_choices("Lineart"))
    assert labels["lineart_realistic"] == "lineart"  # labels shown, names sent


class Catalog:
    def __init__(self, files):
        self.files = files

    def files_of_kind(self, kind):
        assert kind == "controlnet"
        return self.files


class Hashes:
    def partial_hash(self, path):
        return "0123abcd"


def handlers_over(catalog: Catalog, tmp_path: Path) -> ControlNetHandlers:
    """The accordion's handlers over an engine whose catalog is `catalog` and whose models are FLUX."""
    from app.settings import Settings
    from app.ui.context import UIContext

    engine = SimpleNamespace(catalog=lambda refresh=False: catalog, hash_cache=Hashes(),
                             resolve_model=lambda name: SimpleNamespace(family="flux"))
    return ControlNetHandlers(UIContext(engine=engine, settings=Settings(models_dir=tmp_path)))


def controlnet(tmp_path: Path, name: str, family: str, types: tuple[str, ...], variant: str = "instantx"):
    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(b"x")
    return SimpleNamespace(path=path, family=family, variant=variant, control_types=types)


def test_a_control_type_lists_the_models_of_its_type_and_of_the_selected_models_family(tmp_path):
    catalog = Catalog([controlnet(tmp_path, "flux-canny", "flux", ("canny",)),
                       controlnet(tmp_path, "flux-depth", "flux", ("depth",)),
                       controlnet(tmp_path, "flux-mystery", "flux", ()),
                       controlnet(tmp_path, "sd3-canny", "sd3", ("canny",))])

    def listed(family, type_name):
        return model_names(model_options(catalog, Hashes(), family, type_name))

    assert listed("flux", "Canny") == [NO_MODEL, "flux-canny [0123abcd]", "flux-mystery [0123abcd]"]
    assert listed("flux", "All") == [NO_MODEL, "flux-canny [0123abcd]", "flux-depth [0123abcd]",
                                     "flux-mystery [0123abcd]"]
    assert listed("sd3", "Depth") == [NO_MODEL]
    assert len(listed(None, "Canny")) == 4  # no model selected: every family's
    canny = model_options(catalog, Hashes(), "flux", "Canny")
    assert pick_model(canny, None, "Canny") == "flux-canny [0123abcd]"  # a type picks its first model
    assert pick_model(canny, "flux-mystery [0123abcd]", "Canny") == "flux-mystery [0123abcd]"  # kept when listed
    assert pick_model(canny, "flux-depth [0123abcd]", "All") == NO_MODEL
    assert pick_model(model_options(catalog, Hashes(), "sd3", "Depth"), "flux-canny [0123abcd]", "Depth") == NO_MODEL


def test_only_a_union_model_offers_its_control_types(tmp_path):
    catalog = Catalog([controlnet(tmp_path, "union", "flux", ("canny", "tile", "depth"), variant="union"),
                       controlnet(tmp_path, "canny", "flux", ("canny",))])
    options = model_options(catalog, Hashes(), "flux", "All")
    assert union_types(option_named(options, "union [0123abcd]")) == ("canny", "tile", "depth")
    assert union_types(option_named(options, "canny [0123abcd]")) is None
    assert union_types(None) is None


def test_each_preprocessor_shows_its_own_sliders():
    show = ControlNetHandlers.slider_updates
    canny = show("canny", False, reset=True)
    assert [u["visible"] for u in canny] == [True, True, True]
    assert (canny[1]["label"], canny[1]["minimum"], canny[1]["maximum"], canny[1]["value"]) == \
        ("Low Threshold", 1, 255, 100)
    assert canny[2]["label"] == "High Threshold" and canny[0]["label"] == "Resolution"
    assert [u["visible"] for u in show("none", False, reset=True)] == [False, False, False]
    tile = show("tile_resample", False, reset=True)
    assert [u["visible"] for u in tile] == [False, True, False] and tile[1]["label"] == "Down Sampling Rate"
    assert show("canny", True, reset=False)[0] == {"__type__": "update", "visible": False}  # pixel perfect
    assert slider_layout("blur_gaussian", False)["threshold_a"].label == "Sigma"


def test_a_preprocessor_without_its_weights_says_where_to_put_them(tmp_path):
    note = missing_note("depth_anything_v2", tmp_path)
    assert "needs its weights" in note and str(tmp_path) in note
    assert missing_note("canny", tmp_path) == ""


def test_detected_maps_are_captioned_with_their_units_numbers():
    on, off = (ControlNetAddon(model="m", image=PICTURE, save_detected_map=s) for s in (True, False))
    request = validate_request(prompt="x", addons=[off, on, ControlNetAddon(model="m", image=PICTURE, weight=0,
                                                                            save_detected_map=True)])
    assert detected_map_captions(request, 1) == ["ControlNet 1 · detected map"]
    assert detected_map_captions(request, 2) == ["detected map", "detected map"]  # not as counted: no numbers
    assert detected_map_captions(None, 0) == []


class FinishedJob:
    def __init__(self, fn):
        try:
            self.value, self.error = fn(), None
        except Exception as exc:  # noqa: BLE001 - the job's error, raised by result() as the engine's jobs do
            self.value, self.error = None, exc

    def result(self, timeout=None):
        if self.error is not None:
            raise self.error
        return self.value


class WorkerEngine:
    """Runs what is submitted at once, and remembers that it went through the worker."""

    def __init__(self):
        self.calls = []
        self.device = SimpleNamespace(torch_device="cpu")

    def submit_call(self, fn, *, task, source):
        self.calls.append((task, source))
        return FinishedJob(fn)


def test_preview_runs_cheap_preprocessors_here_and_detectors_on_the_worker(tmp_path):
    import gradio as gr

    from app.settings import Settings
    from app.ui.context import UIContext

    engine = WorkerEngine()
    handlers = ControlNetHandlers(UIContext(engine=engine, settings=Settings(models_dir=tmp_path)))
    u = unit(1)
    square = Image.new("RGB", (64, 48), "blue")
    square.paste((255, 0, 0), (16, 12, 40, 36))
    detected = handlers.preview(u, values(u), square, 128, 96)
    assert detected.size == (128, 96) and detected.getbbox() is not None and engine.calls == []
    with pytest.raises(gr.Error, match="ControlNet Unit 1: .*depth_anything_v2 preprocessor needs its weights"):
        handlers.preview(u, values(u, module="depth_anything_v2"), square, 128, 96)
    assert engine.calls == [("controlnet preview", "ui:ControlNet Unit 1")]
    with pytest.raises(gr.Error, match="ControlNet Unit 1: drop a control image into the unit first"):
        handlers.preview(u, values(u), None, 128, 96)


def test_picking_a_union_model_shows_its_modes_and_a_single_type_model_hides_them(tmp_path):
    catalog = Catalog([controlnet(tmp_path, "union", "flux", ("canny", "tile"), variant="union"),
                       controlnet(tmp_path, "plain", "flux", ("canny",))])
    handlers = handlers_over(catalog, tmp_path)
    u = unit()
    update = handlers.type_update(u, "base", "Canny", NO_MODEL)
    assert update[u.module]["value"] == "canny"
    assert update[u.model]["value"] == "union [0123abcd]"  # the type's first model
    assert update[u.union_type]["visible"] is True
    assert update[u.union_type]["choices"] == [("From the preprocessor", ""), ("canny", "canny"), ("tile", "tile")]
    assert handlers.union_update("base", "Canny", "plain [0123abcd]")["visible"] is False
    kept = handlers.models_update(u, "base", "Canny", "union [0123abcd]")  # same model: its mode stays as set
    assert kept[u.union_type] == {"__type__": "update"}


def test_a_type_change_resets_the_sliders_to_its_preprocessors_defaults(tmp_path):
    handlers = handlers_over(Catalog([]), tmp_path)
    u = unit()
    update = handlers.type_update(u, "base", "Canny", NO_MODEL)
    assert update[u.threshold_a]["value"] == 100 and update[u.threshold_b]["value"] == 200  # canny's defaults
    assert update[u.resolution]["visible"] is True


def test_an_infotexts_controlnet_entries_fill_the_units_in_order(tmp_path):
    from app.generation.infotext import parse_infotext

    catalog = Catalog([controlnet(tmp_path, "union", "flux", ("canny", "tile"), variant="union"),
                       controlnet(tmp_path, "flux-depth", "flux", ("depth",))])
    handlers = handlers_over(catalog, tmp_path)
    info = parse_infotext(
        'a red square\nSteps: 4, Seed: 1, Size: 64x64, '
        'ControlNet 0: "Module: canny, Model: union [ffffffff], Weight: 0.6, Resize Mode: Just Resize, '
        'Processor Res: 640, Threshold A: 50, Threshold B: 150, Guidance Start: 0.1, Guidance End: 0.8, '
        'Pixel Perfect: False, Control Mode: My prompt is more important, Union Control Type: tile", '
        'ControlNet 1: "Module: none, Model: not-here [12345678], Weight: 1, Resize Mode: Crop and Resize, '
        'Processor Res: 512, Threshold A: -1, Threshold B: -1, Guidance Start: 0, Guidance End: 1, '
        'Pixel Perfect: True, Control Mode: Balanced"')
    units = ControlNetControls([unit(0), unit(1), unit(2)])
    update = units.infotext_update(info, handlers, "base")
    first, second, third = units.units
    assert update[first.enable] is True and update[first.module]["value"] == "canny"
    assert update[first.model]["value"] == "union [0123abcd]"  # found by name, listed with its own hash
    assert (update[first.weight], update[first.guidance_start], update[first.guidance_end]) == (0.6, 0.1, 0.8)
    assert (update[first.control_mode], update[first.resize_mode]) == ("prompt", "just-resize")
    assert (update[first.resolution]["value"], update[first.threshold_a]["value"],
            update[first.threshold_b]["value"]) == (640, 50.0, 150.0)
    assert update[first.union_type]["value"] == "tile" and update[first.union_type]["visible"] is True
    assert update[second.enable] is True and update[second.model]["value"] == NO_MODEL  # not here: pick one
    assert update[second.pixel_perfect] is True and update[second.threshold_a]["visible"] is False
    assert update[third.enable] is False
    assert set(update) <= set(units.pasted())
