"""Every tab's main action through gradio_client, as a script or another program would call it.

Endpoint inputs follow the order the controls are created in (Gradio sorts a set of inputs by
component id): checkpoint, preset, prompt, negative prompt, [task inputs], style, steps, CFG,
distilled CFG, width, height, seed, batch count, batch size.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from app.generation.infotext import read_image_metadata

MODEL = "easel-demo-flux"


@pytest.fixture(scope="module")
def client(live_ui):
    url, _ = live_ui
    return Client(url, verbose=False)


def params(steps=2, width=64, height=64, seed=11, count=1, size=1):
    return ["None", steps, 1.0, 3.5, width, height, seed, count, size]


def test_txt2img_makes_pngs_that_keep_their_infotext(client):
    status, gallery, infotext = client.predict(MODEL, "Balanced", "a red circle", "", *params(width=96, size=2),
                                               api_name="/txt2img")
    assert "Done" in status and len(gallery) == 2
    with Image.open(gallery[1]["image"]) as im:
        assert im.size == (96, 64)
        assert read_image_metadata(im).infotext.params["Seed"] == "12"
    assert infotext.startswith("a red circle\n") and "Seed: 11" in infotext


def test_style_from_the_preset_wraps_the_prompt(client):
    status, gallery, infotext = client.predict(MODEL, "Balanced", "a fox", "", "Watercolor", *params()[1:],
                                               api_name="/txt2img")
    assert infotext.startswith("watercolor painting of a fox, soft washes")


def test_txt2img_with_the_hires_fix_makes_the_bigger_picture_and_says_so(client):
    # after the batch size: enable, upscaler, hires steps, denoising strength, upscale by, resize to (w, h)
    status, gallery, infotext = client.predict(MODEL, "Balanced", "a red circle", "", *params(width=64, height=80),
                                               True, "Lanczos", 2, 0.5, 2, 0, 0, api_name="/txt2img")
    assert "Done" in status and len(gallery) == 1
    with Image.open(gallery[0]["image"]) as im:
        assert im.size == (128, 160)
        params_text = read_image_metadata(im).infotext.params
    assert params_text["Size"] == "64x80" and params_text["Hires upscale"] == "2"
    assert params_text["Hires upscaler"] == "Lanczos" and params_text["Denoising strength"] == "0.5"
    assert "Hires upscale: 2" in infotext


def test_img2img_and_inpaint(client, tmp_path):
    src = Image.new("RGB", (64, 64), (30, 140, 220))
    src.save(tmp_path / "src.png")
    status, gallery, infotext = client.predict(MODEL, "Balanced", "a tree", "", handle_file(str(tmp_path / "src.png")),
                                               0.5, "just-resize", *params(), api_name="/img2img")
    assert "Denoising strength: 0.5" in infotext and len(gallery) == 1

    layer = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    layer.paste((255, 255, 255, 255), (16, 16, 48, 48))
    layer.save(tmp_path / "layer.png")
    editor = {"background": handle_file(str(tmp_path / "src.png")), "layers": [handle_file(str(tmp_path / "layer.png"))],
              "composite": None}
    status, gallery, infotext = client.predict(MODEL, "Balanced", "a red square", "", editor, 1.0, "just-resize", 2,
                                               "original", False, 32, False, *params(), api_name="/inpaint")
    with Image.open(gallery[0]["image"]) as im:
        out = np.asarray(im.convert("RGB"))
    assert (out[2, 2] == (30, 140, 220)).all()  # outside the painted area: untouched
    assert np.abs(out[32, 32].astype(int) - (30, 140, 220)).sum() > 30  # inside: repainted
    assert "Mask blur: 2" in infotext


def test_outpaint_extends_the_picture_and_keeps_its_pixels(client, tmp_path):
    src = Image.new("RGB", (64, 48), (30, 140, 220))
    src.paste((220, 40, 40), (16, 16, 40, 40))
    src.save(tmp_path / "src.png")
    editor = {"background": handle_file(str(tmp_path / "src.png")), "layers": [], "composite": None}
    # after the batch size: outpaint on, directions, pixels, feather
    status, gallery, infotext = client.predict(MODEL, "Balanced", "a field", "", editor, 0.9, "just-resize", 4,
                                               "original", False, 32, False, *params(), True, ["right"], 64, 16,
                                               api_name="/inpaint")
    with Image.open(gallery[0]["image"]) as im:
        assert im.size == (128, 64)  # 48 px high grows to the 64 a model takes at least
        out = np.asarray(im.convert("RGB"))
    assert np.array_equal(out[:48, :64], np.asarray(src))  # the picture, every pixel as it was
    assert "Mask blur: 0" in infotext


def test_inpaint_without_a_mask_says_what_to_do(client, tmp_path):
    Image.new("RGB", (64, 64), (0, 0, 0)).save(tmp_path / "black.png")
    editor = {"background": handle_file(str(tmp_path / "black.png")), "layers": [], "composite": None}
    with pytest.raises(Exception) as err:
        client.predict(MODEL, "Balanced", "x", "", editor, 1.0, "just-resize", 2, "original", False, 32, False,
                       *params(), api_name="/inpaint")
    assert "paint over the area" in str(err.value)


RED, BLUE = (200, 10, 10), (10, 10, 200)
SOURCE_INFOTEXT = "a castle\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, Size: 40x30, Model: easel-demo-flux"


def red_and_blue_source(folder) -> str:
    """40x30, red on the left, blue on the right, with the infotext of the picture it came from."""
    from PIL.PngImagePlugin import PngInfo

    image = Image.new("RGB", (40, 30), RED)
    image.paste(BLUE, (20, 0, 40, 30))
    info = PngInfo()
    info.add_text("parameters", SOURCE_INFOTEXT)
    image.save(folder / "small.png", pnginfo=info)
    return str(folder / "small.png")


def upscale_twice(client, source):
    return client.predict(MODEL, handle_file(source), "Lanczos", 2, False, "", 0.25, 4, 512, 64, api_name="/upscale")


def test_upscale_with_lanczos_makes_the_picture_twice_as_big_and_saves_it(client, live_ui, tmp_path):
    _, settings = live_ui
    before = set(settings.outputs_dir.rglob("*.png"))
    path, status = upscale_twice(client, red_and_blue_source(tmp_path))
    with Image.open(path) as im:
        assert im.size == (80, 60)
        out = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(out[:, :36] - RED).max() <= 2 and np.abs(out[:, 44:] - BLUE).max() <= 2  # the same picture
    assert "Lanczos: 40x30 → 80x60" in status
    saved = set(settings.outputs_dir.rglob("*.png")) - before
    assert len(saved) == 1
    with Image.open(saved.pop()) as im:
        assert np.array_equal(np.asarray(im.convert("RGB")).astype(int), out)


def test_upscale_with_the_diffusion_refine_is_one_job_saved_with_its_infotext(client, live_ui, tmp_path):
    _, settings = live_ui
    before = set(settings.outputs_dir.rglob("*.png"))
    path, status = client.predict(MODEL, handle_file(red_and_blue_source(tmp_path)), "Lanczos", 2, True,
                                  "a red circle", 0.5, 4, 256, 64, api_name="/upscale")
    assert "Lanczos: 40x30 → 80x60 · refined in tiles of 256 px" in status
    saved = set(settings.outputs_dir.rglob("*.png")) - before
    assert [p.name for p in saved] == [Path(path).name]  # saved once, by the job, with its infotext
    with Image.open(path) as im:
        assert im.size == (80, 60)
        params = read_image_metadata(im).infotext.params
        out = np.asarray(im.convert("RGB")).astype(int)
    assert params["SD upscale upscaler"] == "Lanczos" and params["Denoising strength"] == "0.5"
    assert params["Model"] == MODEL
    lanczos = np.asarray(Image.open(red_and_blue_source(tmp_path)).resize((80, 60), Image.Resampling.LANCZOS))
    assert np.abs(out - lanczos.astype(int)).mean() > 2  # repainted by the model, not only resized


@pytest.mark.xfail(strict=True, reason="the Upscale tab saves only 'Postprocess upscaler: Lanczos, Postprocess "
                                       "upscale by: 2' as the parameters text: two pairs, which readers (ours, "
                                       "A1111's) take for the prompt, and the source's prompt and seed are lost")
def test_upscale_keeps_how_the_picture_was_made_and_records_the_upscale(client, tmp_path):
    path, _ = upscale_twice(client, red_and_blue_source(tmp_path))
    with Image.open(path) as im:
        meta = read_image_metadata(im)
    assert meta.infotext is not None and meta.infotext.prompt == "a castle"
    assert meta.infotext.params["Seed"] == "5"
    # A1111 writes the upscale in its own `postprocessing` chunk; as infotext keys it reads the same
    recorded = {**meta.infotext.params, **parse_pairs(meta.raw.get("postprocessing", ""))}
    assert (recorded.get("Postprocess upscaler"), recorded.get("Postprocess upscale by")) == ("Lanczos", "2")


def parse_pairs(text: str) -> dict[str, str]:
    return dict(pair.split(": ", 1) for pair in text.split(", ") if ": " in pair)


def test_png_info_reads_a1111_parameters(client, tmp_path):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a castle\nNegative prompt: fog\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 5, "
                                "Size: 512x512, Model: flux1-dev, Distilled CFG Scale: 3.5")
    Image.new("RGB", (8, 8)).save(tmp_path / "a1111.png", pnginfo=info)
    html, text = client.predict(handle_file(str(tmp_path / "a1111.png")), api_name="/png_info")[:2]
    assert "a castle" in html and "Distilled CFG Scale" in html and "Steps: 20" in text


def test_models_tab_lists_the_catalog(client):
    table, device = client.predict(api_name="/models_refresh")
    rows = table["data"] if isinstance(table, dict) else table
    names = [row[0] for row in rows]
    assert any(n.startswith("easel-demo-flux") for n in names) and any(n.startswith("easel-demo-sd3") for n in names)
    assert "Device" in device


def test_settings_are_saved_to_the_settings_file(client, live_ui):
    _, settings = live_ui
    status = client.predict(str(settings.outputs_dir), "[number]-[date]-[seed]", 3, "Speed", "medvram", "auto", "auto",
                            api_name="/settings_save")
    saved = json.loads(settings.settings_file.read_text())
    assert saved["filename_pattern"] == "[number]-[date]-[seed]" and saved["medvram"] is True
    assert saved["default_preset"] == "Speed" and "Saved" in status
    with pytest.raises(Exception) as err:
        client.predict(str(settings.outputs_dir), "[nope]", 3, "Speed", "auto", "auto", "auto", api_name="/settings_save")
    assert "nope" in str(err.value)


def test_api_is_served_beside_the_ui_with_api(live_ui):
    import httpx

    url, _ = live_ui
    models = httpx.get(f"{url.rstrip('/')}/sdapi/v1/sd-models", timeout=30).json()
    assert {m["model_name"] for m in models} >= {"easel-demo-flux", "easel-demo-sd3"}
