"""A person in a real browser (Debian's Chromium driven by Playwright) uses the ControlNet accordion on
txt2img over the shipped shapes demo and its canny ControlNet: enable unit 0, upload a picture, pick
Canny and the demo model, preview the detected map, generate, and read the unit in the infotext. The
generation is the first one the freshly started app runs. Screenshots go to test-artifacts/ui/."""

import re
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from app.settings import PROJECT_ROOT, Settings

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "ui"
SHIPPED_CONTROLNET = PROJECT_ROOT / "models" / "controlnet" / "demo-canny-flux.safetensors"
SHIPPED_DEMOS = PROJECT_ROOT / "models" / "demo"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

playwright_api = pytest.importorskip("playwright.sync_api")
if shutil.which("chromium") is None:
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)
if not SHIPPED_CONTROLNET.is_file() or not (SHIPPED_DEMOS / "easel-demo-shapes-flux").is_dir():
    pytest.skip("the shipped shapes demo and its canny ControlNet are not in models/", allow_module_level=True)


@pytest.fixture(scope="module")
def controlnet_ui(tmp_path_factory):
    """A UI over a models folder holding the shipped demos and the shipped FLUX canny ControlNet."""
    from app.ui.launch import launch_webui
    from tests.ui.conftest import free_port

    root = tmp_path_factory.mktemp("cn-ui")
    models = root / "models"
    (models / "controlnet").mkdir(parents=True)
    (models / "demo").symlink_to(SHIPPED_DEMOS, target_is_directory=True)
    shutil.copy2(SHIPPED_CONTROLNET, models / "controlnet" / SHIPPED_CONTROLNET.name)
    settings = Settings(models_dir=models, outputs_dir=root / "outputs", device="cpu",
                        settings_file=root / "settings.json", preview_every=0)
    web = launch_webui(settings, host="127.0.0.1", port=free_port(), share=False, auth=[], api=False,
                       api_auth=None, cors=[], preset=None, block=False)
    yield web.url, root
    web.close()


@pytest.fixture(scope="module")
def page(controlnet_ui):
    url, _ = controlnet_ui
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1100})
        pg.goto(url)
        pg.wait_for_function("() => { const i = document.querySelector('#top_model input');"
                             " return i && i.value.includes('easel-demo-shapes-flux'); }", timeout=60_000)
        yield pg
        browser.close()


def square_picture(path: Path) -> Path:
    """A red square on blue, left of the middle: its canny map is the square's outline."""
    im = Image.new("RGB", (128, 128), (30, 60, 200))
    ImageDraw.Draw(im).rectangle([16, 40, 60, 84], fill=(220, 30, 30))
    im.save(path)
    return path


def choose(page, elem_id: str, option: str) -> None:
    """Pick an option of a Gradio dropdown by the text it shows."""
    page.locator(f"#{elem_id} input").click()
    page.locator("ul[role=listbox] li", has_text=option).first.click()


def set_number(page, elem_id, value):
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_canny_unit_previews_its_map_and_generates_with_it(page, controlnet_ui):
    _, root = controlnet_ui
    expect = playwright_api.expect
    page.locator("#txt2img_prompt textarea").fill("a red square on a blue background")
    set_number(page, "txt2img_width", 128)
    set_number(page, "txt2img_height", 128)
    page.locator("#txt2img_controlnet").get_by_text("ControlNet", exact=True).first.click()
    expect(page.locator("#txt2img_cn0_enable")).to_be_visible()
    expect(page.locator("#txt2img_cn0_threshold_a")).to_be_hidden()  # "none" has no sliders

    page.locator("#txt2img_cn0_enable input[type=checkbox]").check()
    page.locator("#txt2img_cn0_type").get_by_text("Canny", exact=True).click()
    # the type picks its default preprocessor, shows its thresholds and selects its model
    expect(page.locator("#txt2img_cn0_module input")).to_have_value("canny", timeout=30_000)
    expect(page.locator("#txt2img_cn0_model input")).to_have_value(_starts("demo-canny-flux"), timeout=30_000)
    page.locator("#txt2img_generate").click()  # no control image yet: a message, not a trace
    expect(page.locator(".toast-body").first).to_contain_text("ControlNet Unit 0: drop a control image",
                                                             timeout=30_000)
    page.locator("#txt2img_cn0_image input[type=file]").set_input_files(str(square_picture(root / "square.png")))
    expect(page.locator("#txt2img_cn0_image img")).to_be_visible(timeout=30_000)
    expect(page.locator("#txt2img_cn0_threshold_a")).to_contain_text("Low Threshold")
    expect(page.locator("#txt2img_cn0_threshold_b")).to_contain_text("High Threshold")
    choose(page, "txt2img_cn0_model", "demo-canny-flux")  # as a person picks it (it stays the one chosen)
    expect(page.locator("#txt2img_cn0_model input")).to_have_value(_starts("demo-canny-flux"))

    page.locator("#txt2img_cn0_preview").click()
    expect(page.locator("#txt2img_cn0_detected img")).to_be_visible(timeout=60_000)
    page.locator("#txt2img_controlnet").screenshot(path="/tmp/controlnet-accordion.png")
    page.screenshot(path=str(ARTIFACTS / "controlnet-accordion.png"), full_page=True)

    page.locator("#txt2img_cn0_save_map input[type=checkbox]").check()
    page.locator("#txt2img_generate").click()
    expect(page.locator("#txt2img_progress")).to_contain_text("Done · 1 image(s)", timeout=180_000)
    infotext = page.locator("#txt2img_infotext textarea")
    expect(infotext).to_have_value(_contains("ControlNet 0"), timeout=30_000)
    expect(infotext).to_have_value(_contains("Module: canny"))
    expect(infotext).to_have_value(_contains("demo-canny-flux"))
    # the saved detected map follows the picture in the gallery, named after its unit
    expect(page.locator("#txt2img_gallery")).to_contain_text("ControlNet 0 · detected map", timeout=30_000)
    page.screenshot(path="/tmp/controlnet-result.png", full_page=True)
    page.screenshot(path=str(ARTIFACTS / "controlnet-result.png"), full_page=True)


def test_a_preprocessor_without_its_weights_is_listed_and_says_what_it_needs(page):
    expect = playwright_api.expect
    page.get_by_role("tab", name="txt2img").click()
    page.locator("#txt2img_controlnet").get_by_role("tab", name="ControlNet Unit 1").click()
    page.locator("#txt2img_cn1_type").get_by_text("Depth", exact=True).click()
    expect(page.locator("#txt2img_cn1_module input")).to_have_value("depth_anything_v2", timeout=30_000)
    expect(page.locator("#txt2img_cn1_missing")).to_contain_text("needs its weights", timeout=30_000)
    expect(page.locator("#txt2img_cn1_missing")).to_contain_text("annotators")
    expect(page.locator("#txt2img_cn1_model input")).to_have_value("None")  # no depth ControlNet here
    page.locator("#txt2img_cn1_tab").screenshot(path="/tmp/controlnet-missing.png")


def _contains(text: str):
    return re.compile(re.escape(text))


def _starts(text: str):
    return re.compile("^" + re.escape(text))


def test_img2img_unit_reads_the_input_image_by_default(page, controlnet_ui):
    _, root = controlnet_ui
    expect = playwright_api.expect
    page.get_by_role("tab", name="img2img").click()
    page.locator("#img2img_image input[type=file]").set_input_files(str(square_picture(root / "input.png")))
    expect(page.locator("#img2img_image img")).to_be_visible(timeout=30_000)
    set_number(page, "img2img_width", 128)
    set_number(page, "img2img_height", 128)
    page.locator("#img2img_controlnet").get_by_text("ControlNet", exact=True).first.click()
    expect(page.locator("#img2img_cn0_use_input input[type=checkbox]")).to_be_checked()
    expect(page.locator("#img2img_cn0_image")).to_be_hidden()  # the unit has no picture of its own
    page.locator("#img2img_cn0_enable input[type=checkbox]").check()
    page.locator("#img2img_cn0_type").get_by_text("Canny", exact=True).click()
    expect(page.locator("#img2img_cn0_model input")).to_have_value(_starts("demo-canny-flux"), timeout=30_000)
    page.locator("#img2img_cn0_preview").click()
    expect(page.locator("#img2img_cn0_detected img")).to_be_visible(timeout=60_000)
    page.locator("#img2img_generate").click()
    expect(page.locator("#img2img_progress")).to_contain_text("Done · 1 image(s)", timeout=180_000)
    expect(page.locator("#img2img_infotext textarea")).to_have_value(_contains("ControlNet 0"), timeout=30_000)
    page.screenshot(path="/tmp/controlnet-img2img.png", full_page=True)
    page.screenshot(path=str(ARTIFACTS / "controlnet-img2img.png"), full_page=True)


def test_png_info_sends_a_pictures_controlnet_units_to_txt2img(page, controlnet_ui):
    from PIL.PngImagePlugin import PngInfo

    _, root = controlnet_ui
    expect = playwright_api.expect
    text = ('a red square on a blue background\nSteps: 4, Seed: 3, Size: 128x128, Model: easel-demo-shapes-flux, '
            'ControlNet 0: "Module: canny, Model: demo-canny-flux [00000000], Weight: 0.7, Resize Mode: Just Resize, '
            'Processor Res: 512, Threshold A: 60, Threshold B: 180, Guidance Start: 0.1, Guidance End: 0.9, '
            'Pixel Perfect: False, Control Mode: My prompt is more important"')
    meta = PngInfo()
    meta.add_text("parameters", text)
    picture = root / "with-units.png"
    Image.new("RGB", (128, 128), "white").save(picture, pnginfo=meta)
    page.get_by_role("tab", name="PNG Info").click()
    page.locator("#pnginfo_image input[type=file]").set_input_files(str(picture))
    expect(page.locator("#pnginfo_text textarea")).to_have_value(_contains("ControlNet 0"), timeout=30_000)
    page.locator("#pnginfo_send_txt2img").click()
    expect(page.locator("#txt2img_cn0_module input")).to_have_value("canny", timeout=30_000)
    expect(page.locator("#txt2img_cn0_enable input[type=checkbox]")).to_be_checked()
    expect(page.locator("#txt2img_cn0_model input")).to_have_value(_starts("demo-canny-flux ["))
    expect(page.locator("#txt2img_cn0_weight input[type=number]")).to_have_value("0.7")
    expect(page.locator("#txt2img_cn0_threshold_a input[type=number]")).to_have_value("60")
    expect(page.locator("#txt2img_cn0_threshold_b input[type=number]")).to_have_value("180")
    page.locator("#txt2img_controlnet").get_by_role("tab", name="ControlNet Unit 0").click()
    expect(page.locator("#txt2img_cn0_control_mode input[value=prompt]")).to_be_checked()
    page.locator("#txt2img_controlnet").screenshot(path="/tmp/controlnet-pasted.png")
    page.locator("#txt2img_controlnet").get_by_role("tab", name="ControlNet Unit 1").click()
    expect(page.locator("#txt2img_cn1_enable input[type=checkbox]")).not_to_be_checked()
