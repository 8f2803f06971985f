"""The shipped demo ControlNets, judged by pixels through the engine: the canny edges of a square in the
left third put the generated square in the left third, on the right in the right third (the caption
never says where); weight 0 and an ending step of 0 give the base image exactly; two units at once both
draw their shape."""

import shutil

import numpy as np
import pytest

from app.demo.shapes import PALETTE, SPECS, draw_at, shape_centroid
from app.engine.engine import Engine
from app.generation.request import ControlNetAddon, validate_request
from app.settings import PROJECT_ROOT, Settings

MODELS = {"flux": "easel-demo-shapes-flux", "sd3": "easel-demo-shapes-sd3"}
CONTROLNETS = {"flux": "demo-canny-flux", "sd3": "demo-canny-sd3"}
SQUARES = [spec for spec in SPECS if spec.shape == "square"]
PLACES = {"left": 0.2, "right": 0.8}
SEEDS = range(24)
SIZE = 128  # the demo models' default size


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-controlnet-content")
    models = root / "models"
    (models / "controlnet").mkdir(parents=True)
    (models / "demo").symlink_to(PROJECT_ROOT / "models" / "demo", target_is_directory=True)
    for name in CONTROLNETS.values():
        shutil.copy(PROJECT_ROOT / "models" / "controlnet" / f"{name}.safetensors", models / "controlnet")
    eng = Engine(Settings(models_dir=models, outputs_dir=root / "out", device="cpu", demo_models=False,
                          settings_file=root / "s.json", hf_cache=root / "no-hf-cache", max_loaded_models=2))
    yield eng
    eng.close()


def spec_for(seed):
    return SQUARES[(seed * 7) % len(SQUARES)]


def edges_at(spec, x):
    """A picture of the square with its centre at x (a fraction of the width): what the canny unit reads."""
    return draw_at(spec, SIZE, x, 0.5, 0.18)


def make(engine, family, spec, seed, units=()):
    req = validate_request(prompt=spec.caption, model=MODELS[family], width=SIZE, height=SIZE, seed=seed, save=False,
                           addons=tuple(units))
    return engine.generate(req, timeout=300).images[0]


def canny_unit(family, picture, **extra):
    return ControlNetAddon(model=CONTROLNETS[family], module="canny", image=picture, pixel_perfect=True, **extra)


def in_third(side, x):
    return x < 1 / 3 if side == "left" else x > 2 / 3


def shape_share(image, spec, columns):
    """The share of pixels in `columns` nearer the square's colour than the background's."""
    arr = np.asarray(image).astype(float)[:, columns]
    fg, bg = (np.array(PALETTE[c], dtype=float) for c in (spec.colour, spec.background))
    return float((((arr - fg) ** 2).sum(-1) < ((arr - bg) ** 2).sum(-1)).mean())


@pytest.mark.parametrize("family", ["flux", "sd3"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_the_edges_put_the_square_in_their_third(engine, family, side):
    hits = 0
    for seed in SEEDS:
        spec = spec_for(seed)
        where = shape_centroid(make(engine, family, spec, seed, [canny_unit(family, edges_at(spec, PLACES[side]))]), spec)
        hits += where is not None and in_third(side, where[0])
    assert hits / len(SEEDS) >= 0.9, f"the square in the {side} third for {hits}/{len(SEEDS)} seeds"


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_without_the_controlnet_the_square_stays_in_the_middle(engine, family):
    middle = 0
    for seed in SEEDS:
        where = shape_centroid(make(engine, family, spec_for(seed), seed), spec_for(seed))
        middle += where is not None and 1 / 3 <= where[0] <= 2 / 3
    assert middle / len(SEEDS) >= 0.9, f"the square in the middle third for {middle}/{len(SEEDS)} seeds"


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_weight_0_and_ending_step_0_give_the_base_image_exactly(engine, family):
    for seed in range(3):
        spec = spec_for(seed)
        base = np.asarray(make(engine, family, spec, seed))
        for off in ({"weight": 0.0}, {"guidance_end": 0.0}):
            unit = canny_unit(family, edges_at(spec, PLACES["left"]), **off)
            assert np.array_equal(np.asarray(make(engine, family, spec, seed, [unit])), base), off


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_two_units_at_once_both_draw_their_square(engine, family):
    left_cols, right_cols = slice(0, SIZE // 3), slice(SIZE - SIZE // 3, SIZE)
    seeds = range(12)
    both = 0
    for seed in seeds:
        spec = spec_for(seed)
        left, right = (canny_unit(family, edges_at(spec, x)) for x in PLACES.values())
        only_left, only_right = make(engine, family, spec, seed, [left]), make(engine, family, spec, seed, [right])
        two = make(engine, family, spec, seed, [left, right])
        both += (shape_share(two, spec, right_cols) > shape_share(only_left, spec, right_cols)
                 and shape_share(two, spec, left_cols) > shape_share(only_right, spec, left_cols))
    assert both / len(seeds) >= 0.75, f"both squares drawn for {both}/{len(seeds)} seeds"
