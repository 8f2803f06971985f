"""What the shipped demo LoRAs do to the pictures, judged by pixels through the engine: each teaches its
demo model purple, a colour the base never saw, only when its tag is in the prompt; weight 0 is the base
image exactly; two LoRAs in one prompt both act. The files load from models/loras through the catalog
and the engine's LoRA add-on like any downloaded LoRA."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from app.catalog.lora_info import read_lora_info
from app.demo.shapes import PALETTE, ShapeSpec, judge, shape_colour
from app.engine.engine import Engine
from app.generation.request import validate_request
from app.settings import PROJECT_ROOT, Settings

MODELS = {"flux": "easel-demo-shapes-flux", "sd3": "easel-demo-shapes-sd3"}
LORAS = {"flux": "demo-purple-flux", "sd3": "demo-purple-sd3"}
HEADLINE = "a purple circle on a white background"
SEEDS = range(24)
SIZE = 128  # the demo models' default size


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """An engine over the shipped demo models and demo LoRAs only (and a copy of each LoRA under another
    name, for two LoRAs in one prompt)."""
    root = tmp_path_factory.mktemp("demo-lora-content")
    models = root / "models"
    (models / "loras").mkdir(parents=True)
    (models / "demo").symlink_to(PROJECT_ROOT / "models" / "demo", target_is_directory=True)
    for name in LORAS.values():
        shutil.copy(PROJECT_ROOT / "models" / "loras" / f"{name}.safetensors", models / "loras")
        shutil.copy(PROJECT_ROOT / "models" / "loras" / f"{name}.safetensors", models / "loras" / f"{name}-copy.safetensors")
    eng = Engine(Settings(models_dir=models, outputs_dir=root / "out", device="cpu", demo_models=False,
                          settings_file=root / "s.json", hf_cache=root / "no-hf-cache", max_loaded_models=2))
    yield eng
    eng.close()


def make(engine, family, prompt, seed, size=SIZE):
    req = validate_request(prompt=prompt, model=MODELS[family], width=size, height=size, seed=seed, save=False)
    return engine.generate(req, timeout=300).images[0]


def purple_share(engine, family, prompt, size=SIZE):
    spec = ShapeSpec("circle", "purple", "white")
    return sum(shape_colour(make(engine, family, prompt, seed, size), spec, PALETTE) == "purple"
               for seed in SEEDS) / len(SEEDS)


def test_the_demo_loras_are_listed_for_their_own_model_with_the_trigger_word(engine):
    loras = {info.name: info for info in (read_lora_info(f.path) for f in engine.catalog().files_of_kind("lora"))}
    for family, name in LORAS.items():
        assert loras[name].family == family
        assert "purple" in loras[name].trigger_words


@pytest.mark.parametrize("family", sorted(LORAS))
def test_the_lora_tag_turns_the_centre_purple_and_without_it_it_is_not(engine, family):
    with_lora = purple_share(engine, family, f"{HEADLINE} <lora:{LORAS[family]}:1>")
    without = purple_share(engine, family, HEADLINE)
    assert with_lora >= 0.9, f"purple centre in {with_lora:.0%} of seeds with the LoRA"
    assert without <= 0.1, f"purple centre in {without:.0%} of seeds without the LoRA"


@pytest.mark.parametrize("family", sorted(LORAS))
def test_the_lora_keeps_base_colours_where_the_prompt_asks_for_them(engine, family):
    spec = ShapeSpec("circle", "red", "blue")
    right = sum(all(judge(make(engine, family, f"{spec.caption} <lora:{LORAS[family]}:1>", seed), spec, PALETTE))
                for seed in SEEDS)
    assert right / len(SEEDS) >= 0.8, f"red on blue kept in {right}/{len(SEEDS)} seeds with the LoRA"


@pytest.mark.parametrize("family", sorted(LORAS))
def test_weight_0_gives_the_base_image_exactly(engine, family):
    for seed in (0, 1):
        base = np.asarray(make(engine, family, HEADLINE, seed))
        zero = np.asarray(make(engine, family, f"{HEADLINE} <lora:{LORAS[family]}:0>", seed))
        assert np.array_equal(zero, base)


@pytest.mark.parametrize("family", sorted(LORAS))
def test_two_loras_in_one_prompt_both_act(engine, family):
    """Half of the LoRA from each of two files: together they make the whole LoRA's picture (purple),
    and each half alone makes another one."""
    name = LORAS[family]
    both = f"{HEADLINE} <lora:{name}:0.5> <lora:{name}-copy:0.5>"
    whole = f"{HEADLINE} <lora:{name}:1>"
    half = f"{HEADLINE} <lora:{name}:0.5>"
    other_half = f"{HEADLINE} <lora:{name}-copy:0.5>"
    assert purple_share(engine, family, both) >= 0.9
    seeds = list(SEEDS)[:8]
    for seed in seeds:
        together = np.asarray(make(engine, family, both, seed)).astype(int)
        assert np.abs(together - np.asarray(make(engine, family, whole, seed)).astype(int)).mean() < 2
        for single in (half, other_half):
            assert np.abs(together - np.asarray(make(engine, family, single, seed)).astype(int)).mean() > 2
