"""A live web UI over the demo models, started once per test module on a free loopback port."""

import socket

import pytest

from app.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def start_ui(demo_models_dir, tmp_path):
    """Start a UI with other launch options; closed at teardown."""
    from app.ui.launch import launch_webui

    started = []

    def start(**options):
        settings = Settings(models_dir=demo_models_dir, outputs_dir=tmp_path / "out", device="cpu",
                            settings_file=tmp_path / "s.json")
        launch = dict(host="127.0.0.1", port=free_port(), share=False, auth=[], api=False, api_auth=None, cors=[],
                      preset=None, block=False)
        web = launch_webui(settings, **{**launch, **options})
        started.append(web)
        return web.url

    yield start
    for web in started:
        web.close()


@pytest.fixture(scope="module")
def live_ui(demo_models_dir, tmp_path_factory):
    from app.ui.launch import launch_webui

    out = tmp_path_factory.mktemp("ui-out")
    settings = Settings(models_dir=demo_models_dir, outputs_dir=out / "outputs", device="cpu",
                        settings_file=out / "settings.json", preview_every=2)
    web = launch_webui(settings, host="127.0.0.1", port=free_port(), share=False, auth=[], api=True,
                       api_auth=None, cors=[], preset="Balanced", block=False)
    yield web.url, settings
    web.close()
