"""First Block Cache on the shipped FLUX shapes demo at 12 steps: the transformer's later blocks run on
fewer steps (counted), the pictures keep their colours (judged), the infotext says the threshold; the
setting applies to jobs that do not say, and a 4-step job runs without it."""

import pytest

from app.demo.shapes import SPECS, judge
from app.engine.engine import Engine
from app.generation.request import validate_request
from app.settings import PROJECT_ROOT, Settings

MODEL = "easel-demo-shapes-flux"
THRESHOLD = 0.2


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    out = tmp_path_factory.mktemp("block-cache")
    eng = Engine(Settings(models_dir=PROJECT_ROOT / "models" / "demo", outputs_dir=out, device="cpu",
                          demo_models=False, settings_file=out / "s.json", hf_cache=out / "no-hf-cache",
                          first_block_cache=THRESHOLD))
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def full_passes(engine):
    """How many times the last block of the loaded transformer ran its layers since the counter was read."""
    engine.generate(validate_request(prompt="warm up", model=MODEL, width=64, height=64, save=False), timeout=120)
    transformer = engine._get_manager().get(engine.resolve_model(MODEL)).base_pipeline.transformer
    count = [0]
    transformer.single_transformer_blocks[-1].proj_out.register_forward_hook(
        lambda *_: count.__setitem__(0, count[0] + 1))

    def read() -> int:
        seen, count[0] = count[0], 0
        return seen
    return read


def make(engine, spec, steps, **extra):
    req = validate_request(prompt=spec.caption, model=MODEL, width=64, height=64, seed=1, steps=steps, save=False,
                           **extra)
    return engine.generate(req, timeout=120)


def test_the_cache_skips_the_later_blocks_and_keeps_the_colours(engine, full_passes):
    full_passes()
    cached_hits = plain_hits = cached_passes = 0
    for spec in SPECS:
        cached = make(engine, spec, 12)  # the setting's threshold
        cached_passes += full_passes()
        plain = make(engine, spec, 12, first_block_cache=0.0)
        assert full_passes() == 12
        cached_hits += all(judge(cached.images[0], spec))
        plain_hits += all(judge(plain.images[0], spec))
        assert f"First block cache: {THRESHOLD}" in cached.infotexts[0]
        assert "First block cache" not in plain.infotexts[0]
    print(f"full passes {cached_passes} of {12 * len(SPECS)} steps; colours right {cached_hits} (cached) vs {plain_hits} of {len(SPECS)}")
    assert cached_passes < 0.8 * 12 * len(SPECS), f"{cached_passes} full passes of {12 * len(SPECS)} steps"
    assert cached_hits >= plain_hits - 1 and cached_hits / len(SPECS) >= 0.9, (cached_hits, plain_hits)


def test_a_four_step_job_runs_without_it(engine, full_passes):
    full_passes()
    result = make(engine, SPECS[0], 4)
    assert full_passes() == 4 and "First block cache" not in result.infotexts[0]
