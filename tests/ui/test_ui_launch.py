"""The web UI as launched: its first generation right after start works, and it shows images saved in an
outputs folder anywhere (not only under the project or the temp folder)."""

import shutil
import tempfile
from pathlib import Path

import httpx
import pytest
from conftest import free_port
from gradio_client import Client
from PIL import Image

from app.settings import Settings
from app.ui.launch import launch_webui


@pytest.fixture
def outputs_elsewhere():
    """A folder outside the project and outside the temp folder (Gradio serves those by default)."""
    folder = Path(tempfile.mkdtemp(prefix="easel-ui-outputs-", dir=Path.home()))
    assert not folder.is_relative_to(tempfile.gettempdir())
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_first_generation_right_after_start_is_shown_from_any_outputs_folder(demo_models_dir, outputs_elsewhere,
                                                                            tmp_path):
    settings = Settings(models_dir=demo_models_dir, outputs_dir=outputs_elsewhere, device="cpu",
                        settings_file=tmp_path / "s.json")
    web = launch_webui(settings, host="127.0.0.1", port=free_port(), share=False, auth=[], api=False,
                       api_auth=None, cors=[], preset=None, block=False)
    try:
        client = Client(web.url, verbose=False)
        status, gallery, infotext = client.predict("easel-demo-flux", "Balanced", "a red circle", "", "None", 2, 1.0,
                                                   3.5, 64, 64, 5, 1, 1, api_name="/txt2img")
        assert "Done" in status, status
        saved = sorted(outputs_elsewhere.rglob("*.png"))
        assert len(saved) == 1
        with Image.open(gallery[0]["image"]) as shown:  # downloaded from the UI, as the browser shows it
            assert shown.size == (64, 64)
        assert "Seed: 5" in infotext
    finally:
        web.close()


def test_the_ui_without_api_serves_no_api_routes(start_ui):
    url = start_ui(api=False)
    assert httpx.get(f"{url.rstrip('/')}/sdapi/v1/sd-models").status_code == 404
    assert httpx.get(url).status_code == 200
