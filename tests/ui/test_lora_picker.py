"""The LoRA picker under the prompt: only the LoRAs that fit the selected model, a filter, and a click that
writes `<lora:NAME:WEIGHT>` into the prompt once (with the activation text, as Forge does)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from app.catalog.lora_info import LoraInfo
from app.engine.engine import Engine
from app.settings import Settings
from app.ui.context import UIContext
from app.ui.lora_picker import NAME_COLUMN, LoraPickerHandlers, filter_loras, insert_lora

FLUX_KEYS = ("lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight",
             "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight")
SDXL_KEYS = ("lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight",
             "lora_unet_down_blocks_1_attentions_0_proj_in.lora_up.weight")
DIFFUSERS_Q = "transformer.transformer_blocks.0.attn.to_q.lora_"


def info(name: str, family: str | None = None, **details) -> LoraInfo:
    return LoraInfo(name=name, alias=details.pop("alias", name), path=Path(f"/loras/{name}.safetensors"),
                    family=family, **details)


LIBRARY = [info("ink", "flux", trigger_words=("ink wash", "mountains"), base_model="Flux.1 D"),
           info("neon", "sd3", trigger_words=("cyb3rpunk",), base_model="SD 3.5 Large"),
           info("anime-xl", "sdxl", base_model="SDXL 1.0"), info("mystery")]


def names(infos) -> list[str]:
    return [i.name for i in infos]


def test_only_loras_that_fit_the_model_are_listed_and_unknown_ones_everywhere():
    assert names(filter_loras(LIBRARY, "flux", "")) == ["ink", "mystery"]
    assert names(filter_loras(LIBRARY, "sd3", None)) == ["neon", "mystery"]
    assert names(filter_loras(LIBRARY, None, "")) == ["ink", "neon", "anime-xl", "mystery"]  # no model yet


def test_the_filter_matches_name_trigger_words_and_base_model_word_by_word():
    assert names(filter_loras(LIBRARY, None, "INK")) == ["ink"]
    assert names(filter_loras(LIBRARY, None, "cyb3r")) == ["neon"]
    assert names(filter_loras(LIBRARY, None, "sd 3.5")) == ["neon"]
    assert names(filter_loras(LIBRARY, None, "wash flux")) == ["ink"]
    assert names(filter_loras(LIBRARY, "sd3", "ink")) == []  # a FLUX LoRA stays hidden for SD3.5


def test_insert_appends_the_tag_after_a_space_and_never_twice():
    ink = LIBRARY[0]
    assert insert_lora("", ink) == ("<lora:ink:1>", True)
    assert insert_lora("a harbour at dawn", ink) == ("a harbour at dawn <lora:ink:1>", True)
    assert insert_lora("a harbour, ", ink) == ("a harbour, <lora:ink:1>", True)
    once = "a harbour <lora:INK:0.6>, boats"
    assert insert_lora(once, ink) == (once, False)
    aliased = info("inkwash_v2", "flux", alias="InkWash")
    assert insert_lora("x <lora:InkWash:1>", aliased) == ("x <lora:InkWash:1>", False)


def test_insert_uses_the_preferred_weight_and_adds_the_activation_text_the_prompt_lacks():
    glow = info("glow", "flux", activation_text="glowing edges", preferred_weight=0.7)
    assert insert_lora("a cat", glow) == ("a cat <lora:glow:0.7> glowing edges", True)
    assert insert_lora("a cat with Glowing Edges", glow) == ("a cat with Glowing Edges <lora:glow:0.7>", True)


# -- the handlers over an engine with LoRA files on disk ---------------------------------------------------

def write_lora(path: Path, tensors: dict, metadata=None) -> None:
    save_file(tensors, str(path), metadata=metadata)


@pytest.fixture(scope="module")
def lora_models_dir(demo_models_dir, tmp_path_factory) -> Path:
    """The demo models (linked) and LoRAs of each kind: FLUX, SD3.5 (told by width), SDXL, unknown."""
    models = tmp_path_factory.mktemp("picker") / "models"
    loras = models / "loras"
    loras.mkdir(parents=True)
    (models / "demo").symlink_to(demo_models_dir / "demo", target_is_directory=True)
    write_lora(loras / "ink.safetensors", {k: torch.zeros(1, 1) for k in FLUX_KEYS},
               {"ss_tag_frequency": json.dumps({"img": {"ink wash": 9, "mountains": 2}})})
    (loras / "ink.json").write_text(json.dumps({"activation text": "ink wash", "sd version": "Flux.1 D"}))
    Image.new("RGB", (16, 16), (20, 20, 20)).save(loras / "ink.preview.png")
    write_lora(loras / "neon.safetensors", {DIFFUSERS_Q + "A.weight": torch.zeros(1, 1536),
                                            DIFFUSERS_Q + "B.weight": torch.zeros(1536, 1)},
               {"easel.trigger_words": "cyb3rpunk"})
    write_lora(loras / "anime-xl.safetensors", {k: torch.zeros(1, 1) for k in SDXL_KEYS})
    write_lora(loras / "mystery.safetensors", {DIFFUSERS_Q + "A.weight": torch.zeros(1, 1),
                                               DIFFUSERS_Q + "B.weight": torch.zeros(1, 1)})
    return models


@pytest.fixture
def handlers(lora_models_dir, tmp_path):
    settings = Settings(models_dir=lora_models_dir, outputs_dir=tmp_path / "out", device="cpu",
                        settings_file=tmp_path / "s.json")
    engine = Engine(settings)
    try:
        yield LoraPickerHandlers(UIContext(engine=engine, settings=settings))
    finally:
        engine.close()


def shown(listing) -> list[list]:
    table, _note = listing
    return table.raw_samples


def test_the_list_follows_the_model(handlers):
    flux_rows = shown(handlers.listing("easel-demo-flux", ""))
    assert [row[NAME_COLUMN] for row in flux_rows] == ["ink", "mystery"]
    ink = flux_rows[0]
    assert Path(ink[0]).name == "ink.preview.png" and ink[2:] == ["ink wash", "Flux.1 D"]
    assert flux_rows[1][0] is None  # no preview: the row still shows
    assert [row[NAME_COLUMN] for row in shown(handlers.listing("easel-demo-sd3", ""))] == ["mystery", "neon"]
    _, note = handlers.listing("easel-demo-sd3", "")
    assert "2 LoRAs for easel-demo-sd3" in note and "2 for other models hidden" in note


def test_the_filter_narrows_the_list_and_says_when_nothing_matches(handlers):
    assert [row[NAME_COLUMN] for row in shown(handlers.listing("easel-demo-sd3", "cyb3r"))] == ["neon"]
    table, note = handlers.listing("easel-demo-flux", "cyb3r")
    assert table.raw_samples == [] and "No LoRA matches “cyb3r”" in note


def test_choosing_a_row_puts_the_tag_in_the_prompt_and_shows_its_trigger_words(handlers):
    ink_row = shown(handlers.listing("easel-demo-flux", "ink"))[0]
    prompt, note = handlers.choose(ink_row, "a harbour at dawn")
    assert prompt == "a harbour at dawn <lora:ink:1> ink wash"
    assert "trigger words: **ink wash**" in note
    again, note = handlers.choose(ink_row, prompt)
    assert again == prompt and "already in the prompt" in note


def test_a_new_file_appears_after_refresh(handlers, lora_models_dir):
    assert "late" not in [row[NAME_COLUMN] for row in shown(handlers.listing("easel-demo-flux", ""))]
    extra = lora_models_dir / "loras" / "late.safetensors"
    shutil.copy(lora_models_dir / "loras" / "mystery.safetensors", extra)
    try:
        assert "late" not in [row[NAME_COLUMN] for row in shown(handlers.listing("easel-demo-flux", ""))]
        assert "late" in [row[NAME_COLUMN] for row in shown(handlers.refreshed("easel-demo-flux", ""))]
    finally:
        extra.unlink()


# -- in a browser: the accordion under the prompt, filled when the model is set, a click on a row ---------

def test_in_a_browser_a_click_on_a_row_writes_the_tag_into_that_tabs_prompt(lora_models_dir, tmp_path):
    playwright_api = pytest.importorskip("playwright.sync_api")
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed")
    from app.ui.launch import launch_webui

    settings = Settings(models_dir=lora_models_dir, outputs_dir=tmp_path / "out", device="cpu",
                        settings_file=tmp_path / "s.json")
    web = launch_webui(settings, host="127.0.0.1", port=0, share=False, auth=[], api=False,
                       api_auth=None, cors=[], preset=None, block=False)
    try:
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(web.url)
            page.locator("#txt2img_lora").get_by_text("LoRA", exact=True).click()
            page.wait_for_function("() => (document.querySelector('#txt2img_lora_note') || {}).innerText"
                                   "?.includes('2 LoRAs for easel-demo-flux')", timeout=60_000)
            page.locator("#txt2img_prompt textarea").fill("a harbour at dawn")
            page.locator("#txt2img_lora_list").get_by_text("mystery", exact=True).click()
            page.wait_for_function("() => document.querySelector('#txt2img_prompt textarea').value"
                                   ".endsWith('<lora:mystery:1>')", timeout=30_000)
            assert page.locator("#txt2img_prompt textarea").input_value() == "a harbour at dawn <lora:mystery:1>"
            page.get_by_role("tab", name="img2img").click()  # only that tab's prompt has it
            assert page.locator("#img2img_prompt textarea").input_value() == ""
            browser.close()
    finally:
        web.close()
