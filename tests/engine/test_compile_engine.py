"""--compile on the shipped shapes demos (FLUX; SD3.5, whose diffusers class names no repeated block): the first image pays the compile and says so once, later
images with another prompt or seed reuse the compiled blocks (no new graphs), and the pictures are the
uncompiled model's to within float rounding."""

import numpy as np
import pytest

from app.engine.engine import Engine
from app.generation.request import validate_request
from app.settings import PROJECT_ROOT, Settings

MODELS = ["easel-demo-shapes-flux", "easel-demo-shapes-sd3"]


def engine_with(tmp_path_factory, compile_blocks: bool) -> Engine:
    out = tmp_path_factory.mktemp("compile")
    return Engine(Settings(models_dir=PROJECT_ROOT / "models" / "demo", outputs_dir=out, device="cpu",
                           demo_models=False, settings_file=out / "s.json", hf_cache=out / "no-hf-cache",
                           compile=compile_blocks))


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    compiled, plain = engine_with(tmp_path_factory, True), engine_with(tmp_path_factory, False)
    yield compiled, plain
    compiled.close()
    plain.close()


def make(engine, model, prompt, seed):
    req = validate_request(prompt=prompt, model=model, width=128, height=128, seed=seed, save=False)
    return engine.generate(req, timeout=600)


@pytest.mark.parametrize("model", MODELS)
def test_the_first_image_compiles_once_and_later_prompts_and_seeds_reuse_it(engines, model):
    from torch._dynamo.utils import counters

    compiled, plain = engines
    first = make(compiled, model, "a red circle on a blue background", 1)
    assert any("compiled the transformer's blocks" in w for w in first.warnings)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > 0
    later = make(compiled, model, "a green square on a white background", 2)
    assert not any("compiled" in w for w in later.warnings)
    assert counters["stats"]["unique_graphs"] == graphs  # no recompile for a new prompt or seed
    reference = make(plain, model, "a green square on a white background", 2)
    difference = np.abs(np.asarray(later.images[0]).astype(float) - np.asarray(reference.images[0]).astype(float))
    assert difference.mean() < 1.0
