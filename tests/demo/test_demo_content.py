"""What the shipped demo models draw, judged by pixels: the colours asked for, at 64 and 128 px, and
img2img / inpaint / negative prompts that behave as a user expects. The models load from models/demo
through the catalog and engine like any real model."""

import numpy as np
import pytest

from app.demo.shapes import SPECS, ShapeSpec, draw, judge, shape_colour
from app.engine.engine import Engine
from app.generation.request import validate_request
from app.settings import PROJECT_ROOT, Settings

MODELS = {"flux": "easel-demo-shapes-flux", "sd3": "easel-demo-shapes-sd3"}
SHIPPED = PROJECT_ROOT / "models" / "demo"


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-content")
    eng = Engine(Settings(models_dir=SHIPPED, outputs_dir=out, device="cpu", demo_models=False,
                          settings_file=out / "s.json", hf_cache=out / "no-hf-cache", max_loaded_models=2))
    yield eng
    eng.close()


def make(engine, model, prompt, size, seed, **extra):
    req = validate_request(prompt=prompt, model=model, width=size, height=size, seed=seed, save=False, **extra)
    return engine.generate(req, timeout=120).images[0]


def test_the_demo_models_are_shipped_and_listed_as_ready(engine):
    models = {m.name: m for m in engine.models()}
    for family, name in MODELS.items():
        entry = models[name]
        assert entry.ready and entry.demo and entry.family == family
        assert entry.label == f"Easel demo · shapes ({'FLUX' if family == 'flux' else 'SD3.5'})"


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_colour_adherence_over_every_caption_at_64px(engine, family):
    hits = 0
    for spec in SPECS:
        shape_ok, background_ok = judge(make(engine, MODELS[family], spec.caption, 64, seed=1), spec)
        hits += shape_ok and background_ok
    assert hits / len(SPECS) >= 0.9, f"{hits}/{len(SPECS)} captions drawn in the right colours"


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_colour_adherence_at_128px(engine, family):
    specs = SPECS[::3]
    hits = sum(all(judge(make(engine, MODELS[family], s.caption, 128, seed=2), s)) for s in specs)
    assert hits / len(specs) >= 0.8, f"{hits}/{len(specs)} at 128 px"


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_img2img_keeps_the_layout_at_low_strength_and_follows_the_prompt_at_high(engine, family):
    source_spec = ShapeSpec("circle", "red", "blue")
    source = draw(source_spec, 128, np.random.default_rng(0))
    targets = [ShapeSpec("square", "yellow", "black"), ShapeSpec("circle", "green", "white"),
               ShapeSpec("triangle", "white", "red"), ShapeSpec("square", "black", "yellow"),
               ShapeSpec("circle", "blue", "green"), ShapeSpec("triangle", "yellow", "white")]
    kept = followed = 0
    for i, new in enumerate(targets):
        low = make(engine, MODELS[family], new.caption, 128, seed=3 + i, task="img2img", image=source, strength=0.25)
        high = make(engine, MODELS[family], new.caption, 128, seed=3 + i, task="img2img", image=source, strength=0.9)
        kept += judge(low, source_spec) == (True, True)
        followed += judge(high, new) == (True, True)
    assert kept == len(targets), f"low strength kept the input's colours in {kept}/{len(targets)}"
    assert followed >= len(targets) - 1, f"high strength followed the new prompt in {followed}/{len(targets)}"


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_inpaint_recolours_the_shape_and_keeps_the_border(engine, family):
    from PIL import Image

    spec = ShapeSpec("circle", "red", "blue")
    source = draw(spec, 128, np.random.default_rng(1))
    mask = Image.new("L", (128, 128), 0)
    mask.paste(255, (24, 24, 104, 104))
    out = make(engine, MODELS[family], "a yellow circle on a blue background", 128, seed=4, task="inpaint",
               image=source, mask=mask, strength=1.0, mask_blur=4)
    assert shape_colour(out, spec) == "yellow"
    assert np.array_equal(np.asarray(out)[:8], np.asarray(source)[:8])  # the border band is the original


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_same_seed_same_pixels(engine, family):
    a = make(engine, MODELS[family], "a green triangle on a white background", 64, seed=5)
    b = make(engine, MODELS[family], "a green triangle on a white background", 64, seed=5)
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_sd3_negative_prompt_changes_the_picture(engine):
    prompt = "a red square on a white background"
    plain = make(engine, MODELS["sd3"], prompt, 64, seed=6, cfg_scale=4.0)
    negative = make(engine, MODELS["sd3"], prompt, 64, seed=6, cfg_scale=4.0, negative_prompt="a red square")
    assert np.abs(np.asarray(plain).astype(int) - np.asarray(negative).astype(int)).mean() > 2
