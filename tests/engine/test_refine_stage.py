"""Refine with another model as the last stage of one job (FLUX schnell's draft, dev's final): the same
seeds, the refining model's own defaults, one model swap for the whole job, and bad stages refused
before queueing. On the random-weight demo models, whose pictures differ by model."""

from __future__ import annotations

import numpy as np
import pytest

from app.engine.engine import Engine
from app.errors import InvalidRequest
from app.generation.infotext import parse_infotext
from app.generation.request import validate_request
from app.settings import Settings

FLUX, SD3 = "easel-demo-flux", "easel-demo-sd3"
PROMPT = "a red circle on a blue background"


def draft_request(model=FLUX, stages=(), **extra):
    return validate_request(prompt=PROMPT, model=model, width=64, height=64, steps=2, seed=11, save=False,
                            stages=list(stages), **extra)


def refine(model=SD3, **stage):
    return {"kind": "refine", "model": model, **stage}


def test_the_refined_picture_is_the_draft_denoised_again_by_the_other_model_with_the_same_seed(engine):
    draft = engine.generate(draft_request()).images[0]
    result = engine.generate(draft_request(stages=[refine(strength=0.5, steps=4)]))
    by_hand = engine.generate(validate_request(task="img2img", image=draft, prompt=PROMPT, model=SD3, steps=4,
                                               strength=0.5, seed=11, save=False)).images[0]
    refined = np.asarray(result.images[0]).astype(int)
    assert result.images[0].size == (64, 64)
    assert np.abs(refined - np.asarray(by_hand).astype(int)).mean() < 1
    assert np.abs(refined - np.asarray(draft).astype(int)).mean() > 2
    params = parse_infotext(result.infotexts[0]).params
    assert params["Model"] == FLUX and params["Seed"] == "11"
    assert params["Refiner"].startswith(f"{SD3} [") and params["Refiner denoise"] == "0.5"
    assert params["Refiner steps"] == "4"


def test_the_refining_model_uses_its_own_defaults_where_the_stage_sets_none(engine):
    params = parse_infotext(engine.generate(draft_request(stages=[refine()])).infotexts[0]).params
    sd3_steps = engine.generate(validate_request(prompt=PROMPT, model=SD3, width=64, height=64, save=False))
    assert params["Refiner steps"] == parse_infotext(sd3_steps.infotexts[0]).params["Steps"]
    assert params["Steps"] == "2"  # the draft's own


def test_hires_then_refine_refines_the_larger_picture(engine):
    result = engine.generate(draft_request(stages=[{"kind": "hires", "upscaler": "Lanczos", "strength": 0.5},
                                                   refine(steps=2)]))
    params = parse_infotext(result.infotexts[0]).params
    assert result.images[0].size == (128, 128) and "Hires upscale" in params and "Refiner" in params


def test_one_model_swap_per_job_the_refine_runs_after_every_batch(demo_models_dir, tmp_path):
    eng = Engine(Settings(models_dir=demo_models_dir, outputs_dir=tmp_path, device="cpu", max_loaded_models=1,
                          settings_file=tmp_path / "settings.json"))
    try:
        job = eng.submit(draft_request(stages=[refine(steps=2, strength=1.0)], batch_count=2))
        order = []
        for p in job.events():
            if p.total_steps and p.state == "running" and (p.stage, p.batch) not in order:
                order.append((p.stage, p.batch))
        result = job.result()
        assert order == [("first pass", 0), ("first pass", 1), ("refine", 0), ("refine", 1)]
        assert result.seeds == [11, 12] and all("Refiner: " in text for text in result.infotexts)
        assert eng.loaded_models == [SD3]
    finally:
        eng.close()


def test_bad_refine_stages_are_refused_before_queueing_naming_the_field(engine):
    with pytest.raises(InvalidRequest, match=r"stages\[0\]\.model: .*nope"):
        engine.submit(draft_request(stages=[refine(model="nope")]))
    with pytest.raises(InvalidRequest, match=r"stages\[0\]\.model: Field required"):
        draft_request(stages=[{"kind": "refine"}])
    with pytest.raises(InvalidRequest, match=r"refine comes last"):
        draft_request(stages=[refine(), {"kind": "hires"}])
    with pytest.raises(InvalidRequest, match=r"stages\[0\]\.strength"):
        draft_request(stages=[refine(strength=0)])
