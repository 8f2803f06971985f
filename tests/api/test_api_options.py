"""/sdapi/v1/options as A1111 clients use it: every option on GET, posted values kept in the settings file
and served back (after a restart too), wrong types refused whole, folders read-only."""

import json
import re
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from app.api import create_api
from app.api.a1111_options import A1111_DEFAULTS
from app.api.options import ApiOptions
from app.settings import Settings

FLUX_TITLE = "easel-demo-flux [demo (random weights)]"
SD3_TITLE = "easel-demo-sd3 [demo (random weights)]"


@pytest.fixture
def own_file_api(live_api, tmp_path):
    """A fresh API over the module's engine with its own settings file; `start()` makes another one on
    the same file, as a restart would."""
    settings = replace(live_api.engine.settings, settings_file=tmp_path / "settings.json")

    def start() -> TestClient:
        return TestClient(create_api(live_api.engine, settings), base_url="http://test/sdapi/v1/")

    start.settings_file = settings.settings_file
    return start


def saved(settings_file) -> dict:
    return json.loads(settings_file.read_text())


def test_get_serves_every_a1111_option_and_nothing_else(live_api):
    options = live_api.get("options").json()
    assert set(options) == set(A1111_DEFAULTS)
    settings = live_api.engine.settings
    assert options["sd_model_checkpoint"] == FLUX_TITLE and options["show_progress_every_n_steps"] == 3
    assert options["samples_format"] == "png" and options["samples_filename_pattern"] == settings.filename_pattern
    assert options["outdir_txt2img_samples"] == str(settings.outputs_dir / "txt2img-images")
    assert options["outdir_img2img_samples"] == str(settings.outputs_dir / "img2img-images")
    assert options["sd_checkpoints_limit"] == settings.max_loaded_models == 2
    assert re.fullmatch(r"[0-9a-f]{64}", options["sd_checkpoint_hash"])
    assert options["send_seed"] is True and options["eta_noise_seed_delta"] == 0 and options["sd_lora"] == "None"


def test_a1111_options_write(live_api):
    """A1111's own test_options_write, then the file it lands in."""
    before = live_api.get("options").json()["send_seed"]
    try:
        response = live_api.post("options", {"send_seed": not before})
        assert response.status_code == 200
        assert response.json()["kept"] == ["send_seed"] and response.json()["ignored"] == ["send_seed"]
        assert live_api.get("options").json()["send_seed"] is (not before)
        assert saved(live_api.engine.settings.settings_file)["a1111_options"]["send_seed"] is (not before)
        assert live_api.post("options", {"sd_model_checkpoint": SD3_TITLE}).json()["updated"] == ["sd_model_checkpoint"]
        assert live_api.get("options").json()["sd_model_checkpoint"] == SD3_TITLE
    finally:
        live_api.post("options", {"send_seed": before, "sd_model_checkpoint": FLUX_TITLE})
    assert live_api.get("options").json()["sd_model_checkpoint"] == FLUX_TITLE


def test_posted_values_come_back_after_a_restart_and_other_settings_stay(own_file_api):
    own_file_api.settings_file.write_text(json.dumps({"filename_pattern": "[number]-[model_name]",
                                                      "disabled_extensions": ["xyz-plot"]}))
    posted = {"send_seed": False, "eta_noise_seed_delta": 31337, "hidden_tabs": ["Train"],
              "sd_model_checkpoint": "easel-demo-sd3", "show_progress_every_n_steps": 5.0}
    with own_file_api() as api:
        response = api.post("options", json=posted)
        assert response.status_code == 200, response.text
        assert response.json()["updated"] == ["sd_model_checkpoint", "show_progress_every_n_steps"]
    with own_file_api() as api:
        options = api.get("options").json()
    assert options["sd_model_checkpoint"] == SD3_TITLE and options["show_progress_every_n_steps"] == 5
    assert (options["send_seed"], options["eta_noise_seed_delta"], options["hidden_tabs"]) == (False, 31337, ["Train"])
    assert options["disabled_extensions"] == ["xyz-plot"]  # Easel's own list, read from the same file
    data = saved(own_file_api.settings_file)
    assert data["filename_pattern"] == "[number]-[model_name]" and data["disabled_extensions"] == ["xyz-plot"]


@pytest.mark.parametrize("body, key, expected", [
    ({"send_seed": False, "show_progress_every_n_steps": "5"}, "show_progress_every_n_steps", "whole number"),
    ({"send_seed": False, "show_progress_every_n_steps": 2.5}, "show_progress_every_n_steps", "whole number"),
    ({"send_seed": False, "jpeg_quality": "high"}, "jpeg_quality", "number"),
    ({"send_seed": 1}, "send_seed", "true or false"),
    ({"send_seed": False, "hidden_tabs": "Train"}, "hidden_tabs", "list"),
    ({"send_seed": False, "sd_model_checkpoint": 5}, "sd_model_checkpoint", "model title"),
    ({"send_seed": False, "samples_format": ["png"]}, "samples_format", "string"),
    ({"send_seed": False, "sd_model_checkpoint": "no-such-model"}, "sd_model_checkpoint", "easel-demo-flux"),
])
def test_a_wrong_value_is_refused_by_name_and_nothing_changes(own_file_api, body, key, expected):
    with own_file_api() as api:
        response = api.post("options", json=body)
        assert response.status_code in (404, 422)
        assert response.json()["detail"].startswith(f"{key}:") and expected in response.json()["detail"]
        assert api.get("options").json()["send_seed"] is True
    assert not own_file_api.settings_file.exists()


def test_a_non_finite_number_is_refused(own_file_api):
    with own_file_api() as api:
        response = api.post("options", content=b'{"eta_ddim": NaN}', headers={"Content-Type": "application/json"})
        assert response.status_code == 422 and response.json()["detail"].startswith("eta_ddim:")
        assert api.get("options").json()["eta_ddim"] == 0.0


def test_folders_and_files_are_read_only(own_file_api, live_api):
    outputs = live_api.engine.settings.outputs_dir
    body = {"outdir_txt2img_samples": "/tmp/elsewhere", "outdir_samples": "/", "temp_dir": "/etc",
            "samples_filename_pattern": "[seed]", "samples_format": "jpg", "disabled_extensions": []}
    with own_file_api() as api:
        response = api.post("options", json=body).json()
        assert response["read_only"] == list(body) and response["ignored"] == list(body)
        assert response["updated"] == [] and response["kept"] == []
        options = api.get("options").json()
    assert options["outdir_txt2img_samples"] == str(outputs / "txt2img-images") and options["outdir_samples"] == ""
    assert options["samples_format"] == "png" and options["temp_dir"] == ""
    assert not own_file_api.settings_file.exists()


def test_unknown_keys_are_reported_and_not_stored(own_file_api):
    with own_file_api() as api:
        response = api.post("options", json={"forge_preset": "flux", "send_size": False}).json()
        assert response["unknown"] == ["forge_preset"] and response["ignored"] == ["forge_preset", "send_size"]
        assert "forge_preset" not in api.get("options").json()
    assert saved(own_file_api.settings_file)["a1111_options"] == {"send_size": False}


def test_posting_back_a_whole_get_changes_nothing(own_file_api):
    with own_file_api() as api:
        before = api.get("options").json()
        response = api.post("options", json=before)
        assert response.status_code == 200, response.text
        assert set(response.json()["read_only"]) >= {"outdir_txt2img_samples", "sd_checkpoint_hash"}
        assert api.get("options").json() == before
    assert saved(own_file_api.settings_file)["a1111_options"] == {"sd_model_checkpoint": FLUX_TITLE}


def test_api_jobs_preview_as_the_options_say(tmp_path):
    options = ApiOptions(None, Settings(settings_file=tmp_path / "settings.json"))
    assert options.preview_every == 3
    for body, every in [({"show_progress_every_n_steps": 7}, 7), ({"live_previews_enable": False}, 0),
                        ({"live_previews_enable": True}, 7), ({"show_progress_every_n_steps": -1}, 0)]:
        options.update(body)
        assert options.preview_every == every, body


def test_broken_saved_options_are_skipped_with_the_rest_kept(own_file_api, caplog):
    own_file_api.settings_file.write_text(json.dumps({"a1111_options": {
        "show_progress_every_n_steps": "often", "send_seed": False, "sd_model_checkpoint": "gone-model"}}))
    with own_file_api() as api:
        options = api.get("options").json()
    assert options["show_progress_every_n_steps"] == 3 and options["send_seed"] is False
    assert options["sd_model_checkpoint"] == FLUX_TITLE  # the saved model is gone: the default one
    assert "show_progress_every_n_steps" in caplog.text and "gone-model" in caplog.text
