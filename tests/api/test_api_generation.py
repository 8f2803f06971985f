"""txt2img and img2img as a client sees them: images, info, png-info round trip, inpainting, options."""

from __future__ import annotations

import json

import numpy as np
import pytest
from api_server import decode_png, png_b64
from PIL import Image

from app.generation.infotext import parse_infotext, read_image_metadata

FLUX_TITLE = "easel-demo-flux [demo (random weights)]"
SD3_TITLE = "easel-demo-sd3 [demo (random weights)]"


def info_of(response) -> dict:
    assert response.status_code == 200, response.text
    return json.loads(response.json()["info"])


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_txt2img_png_infotext_matches_info_and_png_info_reads_it_back(live_api, tiny):
    response = live_api.post("txt2img", {**tiny, "negative_prompt": "blurry", "batch_size": 2, "seed": 41})
    info = info_of(response)
    body = response.json()
    assert len(body["images"]) == 2
    assert not body["images"][0].startswith("data:")
    image = decode_png(body["images"][0])
    assert image.format == "PNG" and image.size == (64, 64)

    assert read_image_metadata(image).infotext == parse_infotext(info["infotexts"][0])
    assert info["all_seeds"] == [41, 42] and info["seed"] == 41
    assert info["all_prompts"] == ["a red circle"] * 2 and info["all_subseeds"] == [-1, -1]
    assert (info["width"], info["height"], info["steps"], info["batch_size"], info["n_iter"]) == (64, 64, 2, 2, 1)
    assert info["sd_model_name"] == "easel-demo-flux" and len(info["sd_model_hash"]) == 10
    assert info["sampler_name"] == "Euler" and info["ignored_fields"] == [] and not info["interrupted"]
    assert len(info["job_timestamp"]) == 14 and info["job_timestamp"].isdigit()
    assert body["parameters"]["prompt"] == "a red circle" and body["parameters"]["batch_size"] == 2

    read = live_api.post("png-info", {"image": body["images"][1]})
    assert read.status_code == 200
    assert read.json()["info"] == info["infotexts"][1]
    params = read.json()["parameters"]
    assert params["Prompt"] == "a red circle" and params["Seed"] == "42"
    assert (params["Size-1"], params["Size-2"]) == ("64", "64")


def test_absent_fields_take_the_model_defaults_not_a1111s(live_api):
    info = info_of(live_api.post("txt2img", {"prompt": "a tree", "width": 64, "height": 64}))
    assert info["steps"] == 4  # FLUX schnell's default, where A1111 would use 20
    assert info["cfg_scale"] == 1


def test_n_iter_makes_batches_with_consecutive_seeds(live_api, tiny):
    info = info_of(live_api.post("txt2img", {**tiny, "n_iter": 2, "seed": 5}))
    assert info["all_seeds"] == [5, 6] and len(info["infotexts"]) == 2


def test_send_images_false_and_save_images(live_api, tiny):
    before = set(live_api.outputs.rglob("*.png"))
    response = live_api.post("txt2img", {**tiny, "send_images": False, "save_images": True})
    assert response.status_code == 200 and response.json()["images"] == []
    saved = set(live_api.outputs.rglob("*.png")) - before
    assert len(saved) == 1
    assert live_api.post("txt2img", tiny).status_code == 200
    assert set(live_api.outputs.rglob("*.png")) - before == saved  # save_images defaults to false


def test_fields_that_do_not_apply_are_accepted_and_listed(live_api, tiny):
    body = {**tiny, "restore_faces": True, "tiling": False, "hr_scale": 2, "subseed": -1,
            "clip_skip": 2, "alwayson_scripts": {"controlnet": {"args": []}, "ADetailer": {"args": [True]}},
            "sampler_name": "DPM++ 2M", "scheduler": "Karras", "override_settings": {"CLIP_stop_at_last_layers": 2},
            "my_own_field": 1}
    info = info_of(live_api.post("txt2img", body))
    assert set(info["ignored_fields"]) == {"restore_faces", "clip_skip", "alwayson_scripts.ADetailer",
                                           "override_settings.CLIP_stop_at_last_layers", "my_own_field"}
    assert any("DPM++ 2M" in w for w in info["warnings"])
    assert any("Karras" in w for w in info["warnings"])
    assert info["sampler_name"] == "Euler"


def test_override_settings_picks_the_model_for_one_request(live_api, tiny):
    override = {"override_settings": {"sd_model_checkpoint": SD3_TITLE}}
    assert info_of(live_api.post("txt2img", {**tiny, **override}))["sd_model_name"] == "easel-demo-sd3"
    assert live_api.get("options").json()["sd_model_checkpoint"] == FLUX_TITLE
    assert info_of(live_api.post("txt2img", tiny))["sd_model_name"] == "easel-demo-flux"


def test_override_kept_when_restore_afterwards_is_false(live_api, tiny):
    body = {**tiny, "override_settings": {"sd_model_checkpoint": "easel-demo-sd3"},
            "override_settings_restore_afterwards": False}
    try:
        assert info_of(live_api.post("txt2img", body))["sd_model_name"] == "easel-demo-sd3"
        assert live_api.get("options").json()["sd_model_checkpoint"] == SD3_TITLE
    finally:
        live_api.post("options", {"sd_model_checkpoint": FLUX_TITLE})


def test_options_switch_the_default_model(live_api, tiny):
    try:
        response = live_api.post("options", {"sd_model_checkpoint": SD3_TITLE, "some_a1111_option": 3})
        assert response.status_code == 200 and response.json()["ignored"] == ["some_a1111_option"]
        assert live_api.get("options").json()["sd_model_checkpoint"] == SD3_TITLE
        assert info_of(live_api.post("txt2img", tiny))["sd_model_name"] == "easel-demo-sd3"
        missing = live_api.post("options", {"sd_model_checkpoint": "sdxl.safetensors [31e35c80fc]"})
        assert missing.status_code == 404 and "easel-demo-flux" in missing.json()["detail"]
        assert live_api.get("options").json()["sd_model_checkpoint"] == SD3_TITLE
    finally:
        live_api.post("options", {"sd_model_checkpoint": FLUX_TITLE})
    assert info_of(live_api.post("txt2img", tiny))["sd_model_name"] == "easel-demo-flux"


def test_img2img_with_data_url_input(live_api, checker, tiny):
    body = {**tiny, "init_images": ["data:image/png;base64," + png_b64(checker)], "denoising_strength": 0.5}
    response = live_api.post("img2img", body)
    info = info_of(response)
    image = decode_png(response.json()["images"][0])
    assert image.size == (64, 64)
    assert parse_infotext(info["infotexts"][0]).params["Denoising strength"] == "0.5"
    assert info["denoising_strength"] == 0.5
    assert response.json()["parameters"]["init_images"] is None  # not echoed without include_init_images


def test_img2img_resize_modes(live_api, tiny):
    wide = Image.new("RGB", (128, 64), (200, 30, 30))
    base = {**tiny, "init_images": [png_b64(wide)], "denoising_strength": 0.3}
    for mode in (0, 1, 2):
        assert decode_png(live_api.post("img2img", {**base, "resize_mode": mode}).json()["images"][0]).size == (64, 64)
    info = info_of(live_api.post("img2img", {**base, "resize_mode": 3}))
    assert any("resize_mode 3" in w for w in info["warnings"])


def test_inpaint_keeps_the_unmasked_pixels(live_api, checker, tiny):
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (24, 24, 40, 40))
    blur = 2
    body = {**tiny, "init_images": [png_b64(checker)], "mask": png_b64(mask), "mask_blur": blur,
            "denoising_strength": 1.0, "inpainting_fill": 0}
    response = live_api.post("img2img", body)
    info = info_of(response)
    out, original = pixels(decode_png(response.json()["images"][0])), pixels(checker)
    reach = 3 * blur + 1  # a Gaussian blur of radius r spreads about 3r
    outside = np.ones((64, 64), bool)
    outside[24 - reach:40 + reach, 24 - reach:40 + reach] = False
    assert np.array_equal(out[outside], original[outside])
    assert np.abs(out[28:36, 28:36] - original[28:36, 28:36]).mean() > 1  # the masked area was repainted
    assert "Masked content: fill" in info["infotexts"][0]  # inpainting_fill 0 is A1111's "fill"


def test_inpainting_mask_invert_repaints_the_black_part(live_api, checker, tiny):
    mask = Image.new("RGB", (64, 64), (0, 0, 0))
    mask.paste((255, 255, 255), (0, 0, 64, 32))  # top half white
    body = {**tiny, "init_images": [png_b64(checker)], "mask": png_b64(mask), "mask_blur": 0,
            "inpainting_mask_invert": 1, "denoising_strength": 1.0, "inpainting_fill": 1}
    response = live_api.post("img2img", body)
    out, original = pixels(decode_png(response.json()["images"][0])), pixels(checker)
    assert np.array_equal(out[:32], original[:32])  # white (kept after inverting)
    assert np.abs(out[40:] - original[40:]).mean() > 1
    assert info_of(response)["warnings"] == []


def test_inpaint_only_masked_area(live_api, checker, tiny):
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 32, 64, 64))
    body = {**tiny, "init_images": [png_b64(checker)], "mask": png_b64(mask), "mask_blur": 0,
            "inpaint_full_res": True, "inpaint_full_res_padding": 8, "denoising_strength": 1.0}
    response = live_api.post("img2img", body)
    params = parse_infotext(info_of(response)["infotexts"][0]).params
    assert params["Inpaint area"] == "Only masked" and params["Masked area padding"] == "8"
    out, original = pixels(decode_png(response.json()["images"][0])), pixels(checker)
    assert np.array_equal(out[:32], original[:32])


def test_empty_mask_with_only_masked_keeps_the_image(live_api, checker, tiny):
    body = {**tiny, "init_images": [png_b64(checker)], "mask": png_b64(Image.new("L", (64, 64), 0)),
            "inpaint_full_res": True, "inpaint_full_res_padding": 0}
    response = live_api.post("img2img", body)
    assert any("mask is empty" in w for w in info_of(response)["warnings"])
    assert np.array_equal(pixels(decode_png(response.json()["images"][0])), pixels(checker))


@pytest.mark.parametrize(("prompt", "seed", "width", "height", "steps"), [
    ("", 7, 64, 64, 1),
    ("ünïcödé 🎨, \"quoted\": yes", 123456789, 96, 64, 2),
    ("line one\nline two", 2**32 - 1, 64, 80, 3),
])
def test_unusual_prompts_round_trip(live_api, prompt, seed, width, height, steps):
    """What the request set comes back three ways: the PNG's own infotext, info.infotexts and png-info."""
    response = live_api.post("txt2img", {"prompt": prompt, "seed": seed, "width": width, "height": height,
                                         "steps": steps})
    info = info_of(response)
    png = response.json()["images"][0]
    image = decode_png(png)
    assert image.size == (width, height)
    stored = read_image_metadata(image)
    assert stored.raw["parameters"] == info["infotexts"][0]  # the file carries the text the response reports
    assert stored.infotext.prompt == prompt
    asked = {"Seed": str(seed), "Size": f"{width}x{height}", "Steps": str(steps)}
    assert {key: stored.infotext.params.get(key) for key in asked} == asked

    read = live_api.post("png-info", {"image": png})
    assert read.status_code == 200, read.text
    assert read.json()["info"] == info["infotexts"][0]
    params = read.json()["parameters"]
    assert params["Prompt"] == prompt and params["Negative prompt"] == ""
    assert (params["Seed"], params["Steps"], params["Size-1"], params["Size-2"]) == (
        str(seed), str(steps), str(width), str(height))
