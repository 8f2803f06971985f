"""The shapes world: captions, drawing and the pixel judge the demo models are trained and graded with."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.demo.shapes import (CAPTIONS, COLOURS, SHAPES, SIDE_CAPTIONS, SIDE_SPECS, SPECS, ShapeSpec, draw,
                             judge, judge_shape, nearest_colour, parse_caption, sample_batch)


def test_captions_cover_every_shape_colour_and_background_pair():
    assert len(COLOURS) >= 6 and len(SHAPES) >= 3
    assert len(CAPTIONS) == len(set(CAPTIONS)) == len(SHAPES) * len(COLOURS) * (len(COLOURS) - 1)
    assert "a red circle on a blue background" in CAPTIONS
    for colour in COLOURS:
        backgrounds = {s.background for s in SPECS if s.colour == colour}
        assert len(backgrounds) >= 5 and colour not in backgrounds


def test_every_caption_parses_back_to_its_spec():
    for caption in CAPTIONS + SIDE_CAPTIONS:
        spec = parse_caption(caption)
        assert spec is not None and spec.caption == caption, caption
        assert spec.colour != spec.background


def test_parse_forgives_case_spacing_and_spelling_but_not_other_text():
    assert parse_caption("  A Red  Circle on a blue background. ") == ShapeSpec("circle", "red", "blue")
    assert parse_caption("a grey square on a black background") is None  # not in the palette
    assert parse_caption("a white triangle on the left of a black background") == ShapeSpec(
        "triangle", "white", "black", "left")
    assert parse_caption("a red circle on a red background") is None
    assert parse_caption("a red cat on a blue background") is None
    assert parse_caption("a photo of a cat") is None
    assert parse_caption("") is None


def test_palette_colours_are_their_own_nearest_colour():
    for name, rgb in COLOURS.items():
        assert nearest_colour(rgb) == name


@pytest.mark.parametrize("size", [32, 64, 128])
def test_judge_accepts_every_drawn_picture(size):
    rng = np.random.default_rng(size)
    for spec in SPECS + SIDE_SPECS:
        assert judge(draw(spec, size, rng), spec) == (True, True), spec.caption


def test_judge_rejects_swapped_colours():
    rng = np.random.default_rng(1)
    for spec in SPECS:
        swapped = ShapeSpec(spec.shape, spec.background, spec.colour, spec.position)
        assert judge(draw(swapped, 64, rng), spec) == (False, False), spec.caption


def test_judge_reads_the_shape_where_the_caption_puts_it():
    rng = np.random.default_rng(2)
    left = ShapeSpec("circle", "red", "blue", "left")
    right = ShapeSpec("circle", "red", "blue", "right")
    image = draw(left, 128, rng)
    assert judge(image, left) == (True, True)
    assert judge(image, right) == (False, True)


def test_judge_rejects_a_blank_picture():
    spec = ShapeSpec("square", "yellow", "black")
    assert judge(Image.new("RGB", (64, 64), COLOURS["black"]), spec) == (False, True)
    assert judge(Image.new("RGB", (64, 64), COLOURS["yellow"]), spec) == (True, False)


def test_shape_guess_matches_drawn_shapes():
    rng = np.random.default_rng(3)
    specs = [SPECS[i] for i in rng.integers(len(SPECS), size=150)]
    right = sum(judge_shape(draw(s, 64, rng), s) == s.shape for s in specs)
    assert right >= 0.95 * len(specs)


def test_seeded_draws_repeat_and_different_seeds_differ():
    spec = SPECS[7]
    a = np.asarray(draw(spec, 64, np.random.default_rng(5)))
    b = np.asarray(draw(spec, 64, np.random.default_rng(5)))
    c = np.asarray(draw(spec, 64, np.random.default_rng(6)))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_draw_takes_a_caption_and_refuses_other_text():
    rng = np.random.default_rng(0)
    image = draw("a green triangle on a white background", 64, rng)
    assert image.size == (64, 64) and image.mode == "RGB"
    assert judge(image, ShapeSpec("triangle", "green", "white")) == (True, True)
    with pytest.raises(ValueError):
        draw("a photo of a cat", 64, rng)


def test_sample_batch_gives_scaled_pictures_that_match_their_captions():
    x, captions = sample_batch(12, 64, np.random.default_rng(4), side_fraction=0.5)
    assert tuple(x.shape) == (12, 3, 64, 64)
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.min() < -0.5 and x.max() > 0.5
    assert any(" of a " in c for c in captions) and any(" of a " not in c for c in captions)
    for picture, caption in zip(x, captions):
        pixels = ((picture.permute(1, 2, 0).numpy() + 1.0) * 127.5).round().astype(np.uint8)
        assert judge(pixels, parse_caption(caption)) == (True, True)
    again, same_captions = sample_batch(12, 64, np.random.default_rng(4), side_fraction=0.5)
    assert same_captions == captions and bool((again == x).all())
