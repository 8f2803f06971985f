"""Requests are checked before any model loads; each error names the field and what is allowed."""

import pytest
from PIL import Image

from app.errors import InvalidRequest
from app.generation.request import validate_request


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"width": 100}, "width", "multiple of 16"),
        ({"height": 0}, "height", "64..4096"),
        ({"width": 100000}, "width", "64..4096"),
        ({"steps": -1}, "steps", "1..150"),
        ({"steps": "many"}, "steps", "integer"),
        ({"cfg_scale": 99}, "cfg_scale", "0.0..30.0"),
        ({"strength": 1.5}, "strength", "0.0..1.0"),
        ({"batch_size": 0}, "batch_size", "1..16"),
        ({"batch_count": 1000}, "batch_count", "1..100"),
        ({"seed": -5}, "seed", "-1..4294967295"),
        ({"prompt": "x" * 1_000_000}, "prompt", "20,000 characters"),
        ({"task": "outpaint"}, "task", "txt2img"),
        ({"unknown_field": 1}, "unknown_field", "not a request field"),
        ({"task": "img2img"}, "image", "needs an input image"),
        ({"task": "inpaint", "image": Image.new("RGB", (64, 64))}, "mask", "needs a mask"),
        ({"task": "img2img", "image": "not an image"}, "image", "must be an image"),
    ],
)
def test_bad_fields_are_named_with_the_allowed_values(fields, field, words):
    with pytest.raises(InvalidRequest) as err:
        validate_request(**fields)
    assert err.value.field == field
    assert words in str(err.value)


def test_mask_of_another_size_is_refused_naming_both_sizes():
    with pytest.raises(InvalidRequest) as err:
        validate_request(task="inpaint", image=Image.new("RGB", (128, 96)), mask=Image.new("L", (64, 64)))
    assert err.value.field == "mask" and "64x64" in str(err.value) and "128x96" in str(err.value)


def test_a_good_request_keeps_its_values_and_defaults_the_rest():
    req = validate_request(prompt="a cat", width=512, height=768, seed=42, batch_size=2, batch_count=3)
    assert (req.width, req.height, req.seed) == (512, 768, 42)
    assert req.steps is None and req.cfg_scale is None  # the model's variant decides
    assert req.total_images == 6


def test_size_error_suggests_the_nearest_multiples():
    with pytest.raises(InvalidRequest) as err:
        validate_request(width=1000)
    assert "992" in str(err.value) and "1008" in str(err.value)


def test_a_prompt_line_posing_as_the_negative_prompt_is_refused_clearly():
    with pytest.raises(InvalidRequest) as err:
        validate_request(prompt="a cat\nNegative prompt: dogs")
    assert err.value.field == "prompt" and "negative prompt field" in str(err.value)
