"""The Settings tab's door: when others can reach the UI, folders and flags cannot be changed from it,
harmless settings still can; on this machine everything can."""

import json
import socket

import gradio as gr
import pytest
from gradio_client import Client

from app.extensions.gate import INSECURE_FLAG, LOCAL, gate_for_server
from app.settings import Settings
from app.ui.context import UIContext
from app.ui.tabs.settings import SettingsLocked, build_settings_tab, settings_to_save

LISTENING = gate_for_server("0.0.0.0", share=False, insecure_access=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def settings(tmp_path):
    return Settings(outputs_dir=tmp_path / "out", settings_file=tmp_path / "settings.json", medvram=True)


@pytest.fixture
def settings_ui(settings):
    """Only the Settings tab, behind the gate of a UI started with --listen."""
    with gr.Blocks() as ui:
        build_settings_tab(UIContext(engine=None, settings=settings), LISTENING)
    ui.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield Client(ui.local_url, verbose=False)
    finally:
        ui.close()


def form(settings, **changes):
    """The values the tab sends for `settings`, with `changes`."""
    values = {"outputs_dir": str(settings.outputs_dir), "filename_pattern": settings.filename_pattern,
              "preview_every": settings.preview_every, "default_preset": None, "lowvram": settings.lowvram,
              "medvram": settings.medvram, "force_fp16": False, "no_half": False, "offload": settings.offload}
    return {**values, **changes}


@pytest.mark.parametrize("change, named", [
    ({"outputs_dir": "/srv/elsewhere"}, "the output folder"),
    ({"medvram": False, "lowvram": True}, "the VRAM mode"),
    ({"no_half": True}, "the precision"),
    ({"offload": "sequential", "outputs_dir": "/tmp/x"}, "the output folder and offload"),
])
def test_folders_and_flags_are_refused_when_others_can_reach_the_ui(settings, change, named):
    with pytest.raises(SettingsLocked) as refused:
        settings_to_save(settings, form(settings, filename_pattern="[seed]", **change), LISTENING)
    assert named in str(refused.value) and INSECURE_FLAG in str(refused.value)


def test_harmless_settings_are_saved_alone_when_others_can_reach_the_ui(settings):
    saved = settings_to_save(settings, form(settings, filename_pattern="[seed]", preview_every=7), LISTENING)
    assert saved == {"filename_pattern": "[seed]", "preview_every": 7, "default_preset": None}


def test_everything_is_saved_on_this_machine(settings):
    values = form(settings, outputs_dir="/srv/elsewhere", offload="group")
    assert settings_to_save(settings, values, LOCAL) == values
    assert settings_to_save(settings, values, gate_for_server("0.0.0.0", False, insecure_access=True)) == values


def test_the_tab_refuses_a_new_output_folder_and_saves_nothing(settings_ui, settings):
    with pytest.raises(Exception) as refused:
        settings_ui.predict("/srv/elsewhere", "[seed]", 3, "(none)", "medvram", "auto", "auto",
                            api_name="/settings_save")
    assert "the output folder" in str(refused.value) and INSECURE_FLAG in str(refused.value)
    assert not settings.settings_file.exists()


def test_the_tab_saves_the_pattern_and_keeps_the_flags_out_of_the_file(settings_ui, settings):
    status = settings_ui.predict(str(settings.outputs_dir), "[seed]-[date]", 3, "(none)", "medvram", "auto", "auto",
                                 api_name="/settings_save")
    assert "Saved" in status
    assert json.loads(settings.settings_file.read_text()) == {"filename_pattern": "[seed]-[date]", "preview_every": 3,
                                                              "default_preset": None}
