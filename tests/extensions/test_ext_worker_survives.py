"""An extension hook that raises SystemExit or KeyboardInterrupt fails its job, naming the extension; the
worker goes on with the next job."""

import pytest

from app.engine.engine import Engine
from app.engine.jobs import FAILED
from app.errors import EaselError
from app.extensions.manager import FAILED as EXTENSION_FAILED
from app.generation.request import validate_request
from app.settings import Settings

EXITS = """
@hookimpl
def on_step_end(job, step, total, latents):
    raise {exc}
"""


@pytest.mark.parametrize("exc", ["SystemExit(3)", "KeyboardInterrupt()"])
def test_a_hook_that_exits_fails_its_job_and_the_next_job_runs(make_ext, ext_dir, new_manager, demo_models_dir,
                                                               tmp_path, exc):
    make_ext(ext_dir, "quitter", EXITS.format(exc=exc))
    manager = new_manager()
    engine = Engine(Settings(models_dir=demo_models_dir, outputs_dir=tmp_path / "out", device="cpu",
                             settings_file=tmp_path / "s.json"), hooks=manager)
    request = validate_request(prompt="a cat", model="easel-demo-flux", width=64, height=64, steps=3, save=False)
    try:
        first = engine.submit(request)
        with pytest.raises(EaselError, match="extension 'quitter'") as caught:
            first.result(timeout=120)
        assert first.state == FAILED and "quitter" in first.progress.message
        assert exc.split("(")[0] in str(caught.value) and "on_step_end" in str(caught.value)
        after = engine.generate(request, timeout=120)  # the worker is alive and the extension is off
    finally:
        engine.close()
    assert len(after.images) == 1
    record = manager.record("quitter")
    assert record.status == EXTENSION_FAILED and any("on_step_end raised" in e for e in record.errors)
