"""How many ControlNet units the generation tabs show: `settings.controlnet_units`, which the Settings tab
saves for the next start (and leaves out of the file while it is unchanged)."""

import json
from pathlib import Path

import gradio as gr
import pytest
from gradio_client import Client

from app.settings import Settings, load_settings
from app.ui.context import UIContext
from app.ui.tabs.settings import build_settings_tab
from tests.ui.conftest import free_port


@pytest.fixture
def settings(tmp_path):
    return Settings(outputs_dir=tmp_path / "out", settings_file=tmp_path / "settings.json")


@pytest.fixture
def settings_ui(settings):
    with gr.Blocks() as ui:
        build_settings_tab(UIContext(engine=None, settings=settings))
    ui.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield Client(ui.local_url, verbose=False)
    finally:
        ui.close()


def test_the_settings_tab_saves_the_unit_count_for_the_next_start(settings_ui, settings):
    form = [str(settings.outputs_dir), "[number]-[seed]", 4, "(none)", "auto", "auto", "auto"]
    settings_ui.predict(*form, 3, api_name="/settings_save")
    assert "controlnet_units" not in json.loads(settings.settings_file.read_text())  # unchanged: not pinned
    status = settings_ui.predict(*form, 5, api_name="/settings_save")
    assert "ControlNet units" in status
    assert json.loads(settings.settings_file.read_text())["controlnet_units"] == 5
    assert load_settings({"settings_file": settings.settings_file}, env={}).controlnet_units == 5


def test_each_generation_tab_has_as_many_units_as_the_setting_says(demo_models_dir, tmp_path):
    from app.engine.engine import Engine
    from app.ui.app import build_ui

    settings = Settings(models_dir=demo_models_dir, outputs_dir=tmp_path / "out", device="cpu",
                        settings_file=tmp_path / "s.json", controlnet_units=2)
    ui = build_ui(UIContext.create(Engine(settings), settings, Path(tmp_path / "no-presets")))
    ids = {block.elem_id for block in ui.blocks.values() if getattr(block, "elem_id", None)}
    for task in ("txt2img", "img2img", "inpaint"):
        assert {f"{task}_cn0_enable", f"{task}_cn1_enable"} <= ids and f"{task}_cn2_enable" not in ids
        assert (f"{task}_cn0_use_input" in ids) == (task != "txt2img")


def test_a_hand_edited_unit_count_is_kept_within_what_the_tab_offers():
    from app.ui.controlnet_controls import MAX_CONTROLNET_UNITS, unit_count

    assert [unit_count(n) for n in (0, 1, 3, 99)] == [1, 1, 3, MAX_CONTROLNET_UNITS]
