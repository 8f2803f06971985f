"""An X/Y/Z plot whose cell is interrupted stops and returns what it made, instead of failing."""

import threading
from pathlib import Path

from app.engine.engine import Engine
from app.extensions.facade import EaselFacade
from app.extensions.manager import ExtensionManager
from app.generation.request import validate_request
from app.settings import Settings

REPO_EXTENSIONS = Path(__file__).resolve().parents[2] / "extensions"


def test_an_interrupted_cell_stops_the_plot_without_an_error(demo_models_dir, tmp_path, hold_worker):
    xyz = ExtensionManager(REPO_EXTENSIONS, tmp_path / "s.json", entry_points=False).load().record("xyz-plot").module
    settings = Settings(models_dir=demo_models_dir, outputs_dir=tmp_path / "out", device="cpu",
                        settings_file=tmp_path / "s.json")
    engine = Engine(settings)
    outcome = {}

    def plot():
        request = validate_request(prompt="a red circle", model="easel-demo-flux", width=64, height=64, steps=1,
                                   seed=3, save=False)
        try:
            outcome["result"] = xyz.make_xyz_plot(EaselFacade(engine, settings), request,
                                                  xyz.make_axis("Seed", "1-3"))
        except Exception as exc:  # what the test is about: no IndexError
            outcome["error"] = exc

    try:
        with hold_worker(engine):
            plotting = threading.Thread(target=plot)
            plotting.start()
            assert engine.wait_for_queue(lambda jobs: any(j.task == "txt2img" for j in jobs), timeout=60)
            (cell,) = [j for j in engine.queued_jobs if j.task == "txt2img"]
            engine.cancel(cell.id)  # the first cell, interrupted while it waits
            plotting.join(60)
    finally:
        engine.close()
    assert "error" not in outcome, outcome.get("error")
    result = outcome["result"]
    assert result.interrupted and result.images == [] and result.grids == []
