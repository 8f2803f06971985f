"""A person in a real browser (Debian's Chromium driven by Playwright): type a prompt, generate, send the
image to inpaint, paint a mask, inpaint, interrupt a long job; screenshots of every tab are kept in
test-artifacts/ui/ to be looked at."""

import re
import shutil
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

playwright_api = pytest.importorskip("playwright.sync_api")
if shutil.which("chromium") is None:
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def page(live_ui):
    url, _ = live_ui
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.goto(url)
        # the model list arrives with the page's load event
        pg.wait_for_function("() => { const i = document.querySelector('#top_model input');"
                             " return i && i.value.includes('easel-demo'); }", timeout=60_000)
        yield pg
        browser.close()


def wait_for_text(page, selector, text, timeout=60_000):
    page.wait_for_function(
        "([sel, text]) => { const e = document.querySelector(sel); return e && e.innerText.includes(text); }",
        arg=[selector, text], timeout=timeout)


def wait_for_value(page, selector, text, timeout=30_000):
    """Gradio updates each output on its own: wait for the textbox rather than read it at once."""
    page.wait_for_function(
        "([sel, text]) => { const e = document.querySelector(sel); return e && e.value.includes(text); }",
        arg=[selector, text], timeout=timeout)


def set_number(page, elem_id, value):
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_generate_send_to_inpaint_paint_and_inpaint(page):
    page.locator("#txt2img_prompt textarea").fill("a red circle on a blue background")
    set_number(page, "txt2img_width", 128)
    set_number(page, "txt2img_height", 128)
    page.locator("#txt2img_generate").click()
    wait_for_text(page, "#txt2img_progress", "Done")
    assert page.locator("#txt2img_gallery img").count() >= 1
    wait_for_value(page, "#txt2img_infotext textarea", "Seed:")
    page.screenshot(path=str(ARTIFACTS / "01-txt2img-result.png"), full_page=True)

    page.locator("#txt2img_send_inpaint").click()
    page.wait_for_selector("#inpaint_editor canvas", timeout=30_000)
    page.wait_for_timeout(1500)
    canvas = page.locator("#inpaint_editor canvas").first
    box = canvas.bounding_box()
    # pick the brush, then paint a stroke across the middle of the picture
    page.locator("#inpaint_editor button[aria-label*='rush'], #inpaint_editor button[title*='rush']").first.click()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 30, cy)
    page.mouse.down()
    for dx in range(-30, 31, 5):
        page.mouse.move(cx + dx, cy, steps=2)
    page.mouse.up()
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "02-inpaint-mask.png"), full_page=True)
    page.locator("#inpaint_generate").click()
    wait_for_text(page, "#inpaint_progress", "Done")
    wait_for_value(page, "#inpaint_infotext textarea", "Denoising strength")
    assert page.locator("#inpaint_gallery img").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "03-inpaint-result.png"), full_page=True)


def test_interrupt_stops_a_long_job(page):
    page.get_by_role("tab", name="txt2img").click()
    set_number(page, "txt2img_steps", 150)
    set_number(page, "txt2img_width", 512)
    set_number(page, "txt2img_height", 512)
    page.locator("#txt2img_generate").click()
    wait_for_text(page, "#txt2img_progress", "step")
    page.screenshot(path=str(ARTIFACTS / "04-progress.png"), full_page=True)
    page.locator("#txt2img_interrupt").click()
    # "Interrupted" shows while the job winds down; the count comes with the final update: wait for both
    playwright_api.expect(page.locator("#txt2img_progress")).to_contain_text("Interrupted · 1 image(s)",
                                                                             timeout=30_000)
    playwright_api.expect(page.locator("#txt2img_gallery img").first).to_be_visible()  # what was made is kept


def test_hires_fix_from_its_accordion_doubles_the_picture(page):
    page.get_by_role("tab", name="txt2img").click()
    set_number(page, "txt2img_steps", 2)
    set_number(page, "txt2img_width", 64)
    set_number(page, "txt2img_height", 64)
    page.locator("#txt2img_hires").get_by_text("Hires. fix").click()
    page.locator("#txt2img_enable_hr input[type=checkbox]").check()
    page.locator("#txt2img_generate").click()
    playwright_api.expect(page.locator("#txt2img_progress")).to_contain_text("Done · 1 image(s)", timeout=60_000)
    wait_for_value(page, "#txt2img_infotext textarea", "Hires upscale: 2")
    playwright_api.expect(page.locator("#txt2img_infotext textarea")).to_have_value(re.compile("Size: 64x64"))
    page.screenshot(path=str(ARTIFACTS / "05-hires-fix.png"), full_page=True)
    page.locator("#txt2img_enable_hr input[type=checkbox]").uncheck()


def test_render_final_refines_the_selected_seed_with_the_other_model(page):
    page.get_by_role("tab", name="txt2img").click()
    page.locator("#txt2img_seed input").fill("4242")
    page.locator("#txt2img_generate").click()
    wait_for_value(page, "#txt2img_infotext textarea", "Seed: 4242,")  # this draft's, not the last picture's
    seed = "4242"
    page.locator("#txt2img_seed input").fill("-1")  # the final takes the selected picture's seed, not this box
    page.locator("#txt2img_refine").get_by_text("Refine with another model").click()
    page.locator("#txt2img_refine_model input").click()
    page.get_by_role("option", name=re.compile("easel-demo-sd3")).click()
    page.locator("#txt2img_render_final").click()
    wait_for_value(page, "#txt2img_infotext textarea", "Refiner: easel-demo-sd3")
    final = page.locator("#txt2img_infotext textarea").input_value()
    assert f"Seed: {seed}," in final and "Model: easel-demo-flux" in final
    page.screenshot(path=str(ARTIFACTS / "06-render-final.png"), full_page=True)


def test_screenshots_of_every_tab(page):
    for name in ["txt2img", "img2img", "inpaint", "Upscale", "PNG Info", "Models", "Settings", "Extensions"]:
        page.get_by_role("tab", name=name).click()
        page.wait_for_timeout(800)
        page.screenshot(path=str(ARTIFACTS / f"tab-{name.lower().replace(' ', '-')}.png"), full_page=True)
    assert len(list(ARTIFACTS.glob("tab-*.png"))) == 8
