"""The `ControlNet N` infotext entries read back: as request fields, and as /png-info's pasted keys."""

from __future__ import annotations

from app.generation.infotext import format_infotext, Infotext, parse_infotext
from app.generation.infotext_controlnet import controlnet_paste_fields, parse_controlnet_units

EXTENSION = ("Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 0.8, Resize Mode: Crop and Resize, "
             "Processor Res: 512, Threshold A: 100, Threshold B: 200, Guidance Start: 0.1, Guidance End: 0.9, "
             "Pixel Perfect: True, Control Mode: My prompt is more important")
EASEL_UNION = ("Module: depth_anything_v2, Model: union-pro [abcd1234], Weight: 1, Resize Mode: Just Resize, "
               "Processor Res: 768, Threshold A: 0, Threshold B: 0, Guidance Start: 0, Guidance End: 1, "
               "Pixel Perfect: False, Control Mode: ControlNet is more important, Union Control Type: depth")


def params_of(**units: str) -> dict[str, str]:
    text = format_infotext(Infotext.build("a cat", values={"Steps": 4, "Seed": 1, "Size": "64x64", **units}))
    return parse_infotext(text).params  # the units' values go through quoting and back


def test_units_read_back_as_request_fields_in_their_order():
    units = parse_controlnet_units(params_of(**{"ControlNet 1": EASEL_UNION, "ControlNet 0": EXTENSION}))
    assert units == [
        {"unit": 0, "module": "canny", "model": "control_v11p_sd15_canny [d14c016b]", "weight": 0.8,
         "resize_mode": "crop-and-resize", "processor_res": 512, "threshold_a": 100.0, "threshold_b": 200.0,
         "guidance_start": 0.1, "guidance_end": 0.9, "pixel_perfect": True, "control_mode": "prompt"},
        {"unit": 1, "module": "depth_anything_v2", "model": "union-pro [abcd1234]", "weight": 1.0,
         "resize_mode": "just-resize", "processor_res": 768, "threshold_a": 0.0, "threshold_b": 0.0,
         "guidance_start": 0.0, "guidance_end": 1.0, "pixel_perfect": False, "control_mode": "controlnet",
         "control_type": "depth"},
    ]


def test_values_that_do_not_read_are_left_out_and_nothing_raises():
    units = parse_controlnet_units({"ControlNet 0": "Module: canny, Weight: heavy, Resize Mode: Stretch, "
                                                   "Pixel Perfect: maybe, junk, : x", "ControlNet": "legacy"})
    assert units == [{"unit": 0, "module": "canny"}]
    assert parse_controlnet_units({"Steps": "4"}) == [] and parse_controlnet_units({}) == []


def test_pasted_fields_are_the_extensions_names_and_values():
    fields = controlnet_paste_fields(params_of(**{"ControlNet 0": EXTENSION, "ControlNet 1": EASEL_UNION}))
    assert fields["ControlNet 0 module"] == "canny"
    assert fields["ControlNet 0 resize_mode"] == "Crop and Resize"
    assert fields["ControlNet 0 control_mode"] == "My prompt is more important"
    assert fields["ControlNet 0 processor_res"] == 512 and fields["ControlNet 0 pixel_perfect"] is True
    assert fields["ControlNet 1 control_mode"] == "ControlNet is more important"
    assert "ControlNet 1 control_type" not in fields  # the extension's infotext has no union type
    assert len([k for k in fields if k.startswith("ControlNet 0 ")]) == 11
