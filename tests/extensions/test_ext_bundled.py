"""The bundled extensions, through the public contract: X/Y/Z plot over a real engine, styles, UI hosts."""

from pathlib import Path

import pytest

from app.engine.engine import Engine
from app.extensions.facade import EaselFacade
from app.extensions.gate import ChangeGate
from app.extensions.manager import LOADED, ExtensionManager
from app.extensions.ui import TabHandle, build_extensions_tab, build_ui_sections
from app.generation.request import validate_request
from app.presets import Preset, Style
from app.settings import Settings

REPO_EXTENSIONS = Path(__file__).resolve().parents[2] / "extensions"


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    settings_file = tmp_path_factory.mktemp("s") / "settings.json"
    return ExtensionManager(REPO_EXTENSIONS, settings_file, entry_points=False).load()


@pytest.fixture(scope="module")
def easel(demo_models_dir, tmp_path_factory):
    outputs = tmp_path_factory.mktemp("outputs")
    settings = Settings(models_dir=demo_models_dir, outputs_dir=outputs, device="cpu",
                        settings_file=outputs / "settings.json")
    engine = Engine(settings)
    styles = Preset(name="P", styles=[Style(name="Neon", prompt="neon {prompt}, glowing", negative_prompt="dull")])
    yield EaselFacade(engine, settings, {"P": styles})
    engine.close()


def test_bundled_extensions_load(bundled):
    assert {n: r.status for n, r in bundled.records.items()} == {"styles": LOADED, "xyz-plot": LOADED}


def test_xyz_plot_grid_matches_its_axes(bundled, easel):
    xyz = bundled.record("xyz-plot").module
    request = validate_request(prompt="a red circle", width=64, height=64, steps=1, seed=3)
    result = xyz.make_xyz_plot(easel, request, xyz.make_axis("Seed", "1-2"), xyz.make_axis("Steps", "1, 2, 1"))
    assert len(result.images) == 6 and len(result.grids) == 1
    assert all(im.size == (64, 64) for im in result.images)
    grid = result.grids[0]
    left, top = grid.width - 2 * 64, grid.height - 3 * 64
    assert 10 < left < 200 and 10 < top < 60  # room for "Steps: 2" on the left and "Seed: 1" on top
    assert grid.getpixel((left + 32, top + 32)) == result.images[0].getpixel((32, 32))  # first cell
    assert grid.getpixel((left + 64 + 32, top + 2 * 64 + 32)) == result.images[5].getpixel((32, 32))  # last cell
    assert "Seed: 2" in result.infotexts[1] and "Steps: 2" in result.infotexts[2]
    assert result.grid_paths and result.grid_paths[0].parent.parent.name == "grids-images"


def test_xyz_plot_z_axis_gives_one_grid_per_value(bundled, easel):
    xyz = bundled.record("xyz-plot").module
    request = validate_request(prompt="a red circle", width=64, height=64, steps=1, seed=3, save=False)
    result = xyz.make_xyz_plot(easel, request, xyz.make_axis("Prompt S/R", "red, blue"), None,
                               xyz.make_axis("Size", "64x64, 80x64"))
    assert [g.size[0] - result.grids[0].size[0] for g in result.grids] == [0, 2 * 16]  # 2 columns, 16 px wider
    assert result.grid_paths == []
    assert "a blue circle" in result.infotexts[1]


@pytest.mark.parametrize("kind,text,values", [
    ("Steps", "1-5", (1, 2, 3, 4, 5)), ("Steps", "1-9 (+4)", (1, 5, 9)), ("CFG scale", "1-2 [3]", (1.0, 1.5, 2.0)),
    ("Seed", "7, 3", (7, 3)), ("Model", 'a, "b, c"', ("a", "b, c")), ("Size", "64, 96x64", ((64, 64), (96, 64)))])
def test_axis_value_syntax(bundled, kind, text, values):
    assert bundled.record("xyz-plot").module.make_axis(kind, text).values == values


def test_styles_apply_a_template(bundled, easel):
    styles = bundled.record("styles").module
    assert styles.apply_style(easel.styles(), "Neon", "a cat", "blurry") == ("neon a cat, glowing", "blurry, dull")


def test_ui_hosts_build_sections_and_a_locked_tab(bundled, easel):
    import gradio as gr

    with gr.Blocks():
        prompt, negative = gr.Textbox(), gr.Textbox()
        handle = TabHandle("txt2img", {"prompt": prompt, "negative_prompt": negative}, easel)
        build_ui_sections(bundled, handle)
        tab = build_extensions_tab(bundled, ChangeGate(False, "reachable from other machines"))
    titles = [title for _, title, _ in bundled.ui_sections(handle)]
    assert titles == ["Styles", "X/Y/Z plot"]
    assert all(r.status == LOADED for r in bundled.records.values())  # no build failed
    assert tab["install"].interactive is False
    assert [row[0] for row in tab["refresh"]()[0]] == ["styles", "xyz-plot"]
