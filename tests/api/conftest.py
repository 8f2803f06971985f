"""One live API server per test module, over an engine on the demo models (64 px, 1-2 steps in tests)."""

from __future__ import annotations

import httpx
import pytest
from api_server import LAUNCH_MODES, LiveApi, make_models_dir, serve_mode, api_settings
from PIL import Image



@pytest.fixture(scope="module")
def api_models_dir(demo_models_dir, tmp_path_factory):
    return make_models_dir(tmp_path_factory.mktemp("api-models"), demo_models_dir)


@pytest.fixture(scope="module", params=LAUNCH_MODES)
def live_api(request, api_models_dir, tmp_path_factory):
    """The API as each launch mode serves it: `--nowebui` and `--api` beside the web UI."""
    outputs = tmp_path_factory.mktemp("api-outputs")
    served = serve_mode(request.param, api_settings(api_models_dir, outputs))
    client = httpx.Client(timeout=120)
    try:
        yield LiveApi(served.base_url, client, served.engine, outputs)
    finally:
        client.close()
        served.close()


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
