"""Outpaint's canvas and mask: the picture where it was, the new strips filled from its edges, the mask
black over the picture and fading in over `feather` px of the new area, sizes snapped to 16; and an
outpaint job through the engine keeps every pixel of the picture."""

import numpy as np
import pytest
from PIL import Image

from app.errors import InvalidRequest
from app.generation.outpaint import Outpaint, outpaint_canvas, outpaint_fields
from app.generation.request import validate_request


def picture(width=64, height=64):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_outpaint_right_puts_the_picture_left_and_stretches_its_right_edge():
    source = picture()
    canvas, mask, (left, up) = outpaint_canvas(source, Outpaint(right=64, feather=16))
    pixels, weights = np.asarray(canvas), np.asarray(mask).astype(int)
    assert canvas.size == mask.size == (128, 64) and (left, up) == (0, 0)
    assert np.array_equal(pixels[:, :64], np.asarray(source))
    assert np.array_equal(pixels[:, 64:], np.repeat(np.asarray(source)[:, -1:], 64, axis=1))
    assert weights[:, :64].max() == 0  # the picture: never repainted
    ramp = weights[0, 64:64 + 16]
    assert np.all(np.diff(ramp) > 0) and ramp[0] < 32 and np.all(weights[:, 64 + 15:] == 255)


def test_every_direction_and_sizes_snapped_to_16():
    source = picture(50, 40)
    canvas, mask, (left, up) = outpaint_canvas(source, Outpaint.towards(["left", "up"], 20, feather=0))
    assert canvas.size[0] % 16 == 0 and canvas.size[1] % 16 == 0
    assert (left, up) == (canvas.width - 50, canvas.height - 40) and left >= 20 and up >= 20
    assert np.array_equal(np.asarray(canvas)[up:, left:], np.asarray(source))
    weights = np.asarray(mask)
    assert weights[up:, left:].max() == 0 and weights[:up].min() == 255 and weights[:, :left].min() == 255


def test_a_side_outpainted_on_neither_end_grows_at_its_far_end_to_16_and_64():
    canvas, mask, _ = outpaint_canvas(picture(64, 72), Outpaint(right=32))
    assert canvas.size == (96, 80)
    assert np.asarray(mask)[:72, :64].max() == 0 and np.asarray(mask)[72:, :].min() > 0
    assert outpaint_canvas(picture(64, 40), Outpaint(right=32))[0].size == (96, 64)


def test_bad_outpaints_name_what_is_wrong():
    with pytest.raises(InvalidRequest, match="direction: 'sideways' is not a direction"):
        Outpaint.towards(["sideways"], 64)
    with pytest.raises(InvalidRequest, match="outpaint: nothing to outpaint"):
        outpaint_canvas(picture(), Outpaint())
    with pytest.raises(InvalidRequest, match=r"outpaint.right: 5000 is out of range"):
        outpaint_canvas(picture(), Outpaint(right=5000))
    with pytest.raises(InvalidRequest, match="outpaint: makes a 4160x64 picture"):
        outpaint_canvas(picture(), Outpaint(right=2048, left=2048))


def test_an_outpaint_job_keeps_every_pixel_of_the_picture(engine):
    source = picture()
    request = validate_request(task="inpaint", prompt="a field", model="easel-demo-flux", steps=2, seed=3,
                               strength=0.9, save=False, **outpaint_fields(source, Outpaint(right=64, down=16)))
    out = np.asarray(engine.generate(request).images[0])
    assert out.shape == (80, 128, 3)
    assert np.array_equal(out[:64, :64], np.asarray(source))
    canvas = np.asarray(outpaint_fields(source, Outpaint(right=64, down=16))["image"]).astype(int)
    assert np.abs(out[:, 80:].astype(int) - canvas[:, 80:]).mean() > 2  # the new area painted by the model
