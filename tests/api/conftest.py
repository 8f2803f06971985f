"""One live API server per test module, over an engine on the demo models (64 px, 1-2 steps in tests)."""

from __future__ import annotations

import httpx
import pytest
from api_server import LiveApi, build_engine, make_models_dir, start_server, stop_server
from PIL import Image

from app.api import create_api


@pytest.fixture(scope="module")
def api_models_dir(demo_models_dir, tmp_path_factory):
    return make_models_dir(tmp_path_factory.mktemp("api-models"), demo_models_dir)


@pytest.fixture(scope="module")
def live_api(api_models_dir, tmp_path_factory):
    outputs = tmp_path_factory.mktemp("api-outputs")
    engine = build_engine(api_models_dir, outputs)
    app = create_api(engine, engine.settings)
    server, thread, base_url = start_server(app)
    client = httpx.Client(timeout=120)
    try:
        yield LiveApi(base_url, client, engine, outputs)
    finally:
        client.close()
        stop_server(server, thread)
        engine.close()


@pytest.fixture
def checker():
    """64x64, four flat quadrants: any change to its pixels shows."""
    im = Image.new("RGB", (64, 64))
    for i, colour in enumerate([(220, 40, 40), (40, 200, 60), (40, 60, 220), (240, 230, 60)]):
        x, y = (i % 2) * 32, (i // 2) * 32
        im.paste(colour, (x, y, x + 32, y + 32))
    return im


TINY = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 2, "seed": 1}


@pytest.fixture
def tiny():
    return dict(TINY)
