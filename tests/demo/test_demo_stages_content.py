"""Multi-stage jobs on the shipped demo models, judged by pixels: the hires fix (a 64 px draft upscaled
to 128 px and denoised again keeps the draft's shape colour and background, and the second pass really
repaints: it is not the draft merely resized); a refine with the other demo model keeps the seed's
picture and its colours."""

import numpy as np
import pytest
from PIL import Image

from app.demo.shapes import SPECS, background_colour, shape_colour
from app.engine.engine import Engine
from app.generation.request import validate_request
from app.settings import PROJECT_ROOT, Settings

MODELS = {"flux": "easel-demo-shapes-flux", "sd3": "easel-demo-shapes-sd3"}
SEEDS = range(10)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-hires")
    eng = Engine(Settings(models_dir=PROJECT_ROOT / "models" / "demo", outputs_dir=out, device="cpu",
                          demo_models=False, settings_file=out / "s.json", hf_cache=out / "no-hf-cache",
                          max_loaded_models=2))
    yield eng
    eng.close()


def make(engine, family, caption, seed, **extra):
    req = validate_request(prompt=caption, model=MODELS[family], width=64, height=64, seed=seed, save=False,
                           **extra)
    return engine.generate(req, timeout=120).images[0]


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_hires_64_to_128_keeps_the_drafts_colours_and_repaints_at_the_new_size(engine, family):
    kept, repainted = 0, 0
    for seed in SEEDS:
        spec = SPECS[(seed * 7) % len(SPECS)]
        draft = make(engine, family, spec.caption, seed)
        final = make(engine, family, spec.caption, seed, stages=[{"kind": "hires", "scale": 2.0, "strength": 0.5}])
        assert final.size == (128, 128)
        kept += (shape_colour(final, spec), background_colour(final)) == (shape_colour(draft, spec),
                                                                          background_colour(draft))
        resized = np.asarray(draft.resize((128, 128), Image.LANCZOS)).astype(int)
        repainted += np.abs(np.asarray(final).astype(int) - resized).mean() > 5.0
    assert kept / len(SEEDS) >= 0.9, f"the draft's colours kept in {kept}/{len(SEEDS)} seeds"
    assert repainted / len(SEEDS) >= 0.9, f"the second pass changed the picture in {repainted}/{len(SEEDS)} seeds"


def test_refine_with_the_other_demo_model_keeps_the_colours_and_changes_the_pixels(engine):
    first, second = "flux", "sd3"
    kept, changed = 0, 0
    for seed in SEEDS:
        spec = SPECS[(seed * 5) % len(SPECS)]
        draft = make(engine, first, spec.caption, seed)
        final = make(engine, first, spec.caption, seed, stages=[{"kind": "refine", "model": MODELS[second],
                                                                  "strength": 0.5}])
        kept += (shape_colour(final, spec), background_colour(final)) == (shape_colour(draft, spec),
                                                                          background_colour(draft))
        changed += np.abs(np.asarray(final).astype(int) - np.asarray(draft).astype(int)).mean() > 2.0
    assert kept / len(SEEDS) >= 0.9, f"the draft's colours kept in {kept}/{len(SEEDS)} seeds"
    assert changed / len(SEEDS) >= 0.9, f"the refine changed the picture in {changed}/{len(SEEDS)} seeds"
