"""An image stopped early says in its saved infotext how many steps it got: "Steps" is the steps that ran,
"Steps requested" the count asked for. The stop comes from an extension's on_step_end at a known step,
through the engine's own interrupt and skip, so the step is exact (no timing involved)."""

import textwrap

import pytest
from PIL import Image

from app.api.info import build_info
from app.engine.engine import Engine
from app.extensions.manager import ExtensionManager
from app.generation.infotext import read_image_metadata
from app.generation.request import validate_request
from app.settings import Settings

STOPPER = """
import pluggy

hookimpl = pluggy.HookimplMarker("easel")
control = {}  # engine, action ("interrupt" or "skip"), at (the n-th step seen in the job)
seen = []


@hookimpl
def on_step_end(job, step, total, latents):
    seen.append(step)
    if len(seen) == control.get("at"):
        getattr(control["engine"], control["action"])()
"""


@pytest.fixture(scope="module")
def stopper(demo_models_dir, tmp_path_factory):
    """(engine, the extension's module): set module.control to stop the next job at a step."""
    root = tmp_path_factory.mktemp("stopper")
    folder = root / "extensions" / "stopper"
    folder.mkdir(parents=True)
    (folder / "extension.toml").write_text('name = "stopper"\nversion = "1.0"\ndescription = "test"\n'
                                           'requires = ">=0.1,<0.2"\ndependencies = []\n')
    (folder / "__init__.py").write_text(textwrap.dedent(STOPPER))
    manager = ExtensionManager(root / "extensions", root / "settings.json", entry_points=False).load()
    engine = Engine(Settings(models_dir=demo_models_dir, outputs_dir=root / "outputs", device="cpu",
                             settings_file=root / "settings.json"), hooks=manager)
    module = manager.record("stopper").module
    yield engine, module
    engine.close()


def _run(stopper, action, at, **fields):
    engine, module = stopper
    module.seen.clear()
    module.control.clear()
    module.control.update(engine=engine, action=action, at=at)
    request = validate_request(prompt="a red circle", width=64, height=64, seed=3, **fields)
    result = engine.generate(request, timeout=120)
    return result, [_saved_params(p) for p in result.paths], request


def _saved_params(path):
    with Image.open(path) as im:
        return read_image_metadata(im).infotext.params


@pytest.mark.parametrize("model", ["easel-demo-flux", "easel-demo-sd3"])
def test_an_interrupted_image_says_the_steps_that_ran(stopper, model):
    result, [params], request = _run(stopper, "interrupt", 2, model=model, steps=6)
    assert result.interrupted and len(result.images) == 1
    assert params["Steps"] == "2" and params["Steps requested"] == "6"
    assert list(params).index("Steps") == 0  # still where A1111 readers look first
    # the API's `info` keeps A1111's meaning of "steps": the count asked for
    info = build_info(result, request, created=0.0, ignored_fields=[], notes=[])
    assert (info["steps"], info["interrupted"]) == (6, True)


def test_a_skipped_batch_says_its_steps_and_the_next_batch_is_whole(stopper):
    result, [skipped, whole], _ = _run(stopper, "skip", 2, model="easel-demo-flux", steps=5, batch_count=2)
    assert not result.interrupted and result.seeds == [3, 4]
    assert (skipped["Steps"], skipped["Steps requested"]) == ("2", "5")
    assert whole["Steps"] == "5" and "Steps requested" not in whole


def test_an_interrupt_on_the_last_step_leaves_a_finished_image(stopper):
    _, [params], _ = _run(stopper, "interrupt", 4, model="easel-demo-flux", steps=4)
    assert params["Steps"] == "4" and "Steps requested" not in params


def test_an_interrupted_img2img_counts_the_steps_it_denoised(stopper):
    image = Image.new("RGB", (64, 64), (30, 120, 200))
    result, [params], _ = _run(stopper, "interrupt", 2, model="easel-demo-sd3", task="img2img", image=image,
                            strength=0.5, steps=8)  # strength 0.5 of 8 steps: 4 would run
    _, module = stopper
    assert module.seen == [1, 2] and result.interrupted
    assert (params["Steps"], params["Steps requested"], params["Denoising strength"]) == ("2", "8", "0.5")
