"""An engine over the random-weight demo models, built once per test session into a temporary folder."""

import pytest
from PIL import Image

from app.engine.engine import Engine
from app.settings import Settings


@pytest.fixture(scope="session")
def engine(demo_models_dir, tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    eng = Engine(Settings(models_dir=demo_models_dir, outputs_dir=outputs, device="cpu", max_loaded_models=2,
                          settings_file=outputs / "settings.json"))
    yield eng
    eng.close()


@pytest.fixture
def checker_image():
    """A 128x128 picture with distinct quadrants, so any change to its pixels shows."""
    im = Image.new("RGB", (128, 128))
    colours = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (240, 230, 60)]
    for i, c in enumerate(colours):
        x, y = (i % 2) * 64, (i // 2) * 64
        im.paste(c, (x, y, x + 64, y + 64))
    return im
