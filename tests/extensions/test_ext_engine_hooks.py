"""Extensions inside a real generation: a request adjusted, every step and saved image seen, and a
raising on_step_end that never kills the generation."""

from app.engine.engine import Engine
from app.generation.infotext import parse_infotext
from app.generation.request import validate_request
from app.settings import Settings

RECORDER = """
seen = {"steps": [], "saved": []}

@hookimpl
def adjust_request(request):
    return request.model_copy(update={"prompt": request.prompt + ", recorded"})

@hookimpl
def on_step_end(job, step, total, latents):
    seen["steps"].append((step, total, tuple(latents.shape)))

@hookimpl
def on_image_saved(path, infotext):
    seen["saved"].append((path, infotext))
"""

BROKEN = """
@hookimpl
def on_step_end(job, step, total, latents):
    raise RuntimeError("broken on purpose")
"""


def test_hooks_run_in_a_generation_and_a_broken_one_is_contained(make_ext, ext_dir, new_manager, demo_models_dir,
                                                                  tmp_path):
    make_ext(ext_dir, "a-broken", BROKEN)
    make_ext(ext_dir, "recorder", RECORDER)
    manager = new_manager()
    engine = Engine(Settings(models_dir=demo_models_dir, outputs_dir=tmp_path / "out", device="cpu",
                             settings_file=tmp_path / "s.json"), hooks=manager)
    try:
        result = engine.generate(validate_request(prompt="a cat", model="easel-demo-flux", width=64, height=64,
                                                  steps=3, seed=1), timeout=60)
    finally:
        engine.close()
    assert len(result.images) == 1
    assert parse_infotext(result.infotexts[0]).prompt == "a cat, recorded"
    seen = manager.record("recorder").module.seen
    assert [s[:2] for s in seen["steps"]] == [(1, 3), (2, 3), (3, 3)]
    assert seen["saved"][0][0] == result.paths[0] and "Seed: 1" in seen["saved"][0][1]
    broken = manager.record("a-broken")
    assert any("broken on purpose" in e for e in broken.errors)
