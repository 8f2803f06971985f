"""A1111's img2img scripts over the API, in each launch mode: `script_name: "SD upscale"` with its
script_args (info, overlap, upscaler index, scale factor) gives the upscaled, tile-refined picture in one
job; a bad arg is a 422 naming it; an unknown script is listed as ignored."""

from __future__ import annotations

import json

import numpy as np
from api_server import decode_png, png_b64
from PIL import Image

from app.generation.infotext import parse_infotext


def source() -> Image.Image:
    image = Image.new("RGB", (50, 40), (200, 40, 40))
    image.paste((40, 60, 200), (25, 0, 50, 40))
    return image


def sd_upscale_body(tiny, args, **extra):
    return {**tiny, "init_images": [png_b64(source())], "denoising_strength": 0.4, "script_name": "SD upscale",
            "script_args": args, **extra}


def test_sd_upscale_upscales_the_init_image_and_refines_it_in_tiles(live_api, tiny):
    lanczos = next(i for i, u in enumerate(live_api.get("upscalers").json()) if u["name"] == "Lanczos")
    response = live_api.post("img2img", sd_upscale_body(tiny, [None, 16, lanczos, 2]))
    assert response.status_code == 200, response.text
    body = response.json()
    image = decode_png(body["images"][0])
    assert image.size == (100, 80)  # the input's own size twice, not the 64x64 of width x height
    resized = np.asarray(source().resize((100, 80), Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(np.asarray(image.convert("RGB")).astype(int) - resized).mean() > 2  # repainted, not only resized
    info = json.loads(body["info"])
    params = parse_infotext(info["infotexts"][0]).params
    assert params["SD upscale upscaler"] == "Lanczos" and params["SD upscale overlap"] == "16"
    assert params["SD upscale tile"] == "64x64" and float(params["Denoising strength"]) == 0.4
    assert not {"script_name", "script_args"} & set(info["ignored_fields"])


def test_sd_upscale_takes_the_upscaler_by_name_and_a1111_defaults_for_missing_args(live_api, tiny):
    response = live_api.post("img2img", sd_upscale_body(tiny, ["", 8, "Nearest"]))
    assert response.status_code == 200, response.text
    assert decode_png(response.json()["images"][0]).size == (100, 80)  # scale_factor: A1111's 2
    params = parse_infotext(json.loads(response.json()["info"])["infotexts"][0]).params
    assert params["SD upscale upscaler"] == "Nearest"


def test_bad_sd_upscale_args_are_a_422_naming_them(live_api, tiny):
    count = len(live_api.get("upscalers").json())
    bad_index = live_api.post("img2img", sd_upscale_body(tiny, [None, 64, count + 5, 2]))
    assert bad_index.status_code == 422 and "script_args[2]" in bad_index.text and "Lanczos" in bad_index.text
    too_large = live_api.post("img2img", sd_upscale_body(tiny, [None, 64, "Lanczos", 9]))
    assert too_large.status_code == 422 and "script_args[3]" in too_large.text
    not_a_number = live_api.post("img2img", sd_upscale_body(tiny, [None, "wide", "Lanczos", 2]))
    assert not_a_number.status_code == 422 and "script_args[1]" in not_a_number.text
    assert live_api.post("img2img", sd_upscale_body(tiny, [None, 16, "Lanczos", 1])).status_code == 200


def test_an_unknown_script_is_listed_as_ignored(live_api, tiny):
    response = live_api.post("img2img", {**tiny, "init_images": [png_b64(source())], "denoising_strength": 0.4,
                                         "script_name": "X/Y/Z plot", "script_args": [1, 2]})
    assert response.status_code == 200, response.text
    info = json.loads(response.json()["info"])
    assert "script_name" in info["ignored_fields"] and decode_png(response.json()["images"][0]).size == (64, 64)


def test_poor_mans_outpainting_extends_the_init_image_and_keeps_its_pixels(live_api, tiny):
    init = Image.new("RGB", (64, 64), (30, 140, 220))
    body = {**tiny, "init_images": [png_b64(init)], "denoising_strength": 0.9, "script_name": "Poor man's outpainting",
            "script_args": [32, 8, 0, ["right", "down"]]}
    response = live_api.post("img2img", body)
    assert response.status_code == 200, response.text
    image = np.asarray(decode_png(response.json()["images"][0]).convert("RGB"))
    assert image.shape == (96, 96, 3)
    assert np.array_equal(image[:64, :64], np.asarray(init))
    params = parse_infotext(json.loads(response.json()["info"])["infotexts"][0]).params
    assert params["Size"] == "96x96" and params["Mask blur"] == "0"


def test_outpainting_mk2_and_its_bad_args(live_api, tiny):
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    body = {**tiny, "init_images": [png_b64(init)], "script_name": "Outpainting mk2"}
    left = live_api.post("img2img", {**body, "script_args": [None, 64, 8, ["left"], 1.0, 0.05]})
    assert left.status_code == 200, left.text
    image = np.asarray(decode_png(left.json()["images"][0]).convert("RGB"))
    assert image.shape == (64, 128, 3) and np.array_equal(image[:, 64:], np.asarray(init))
    sideways = live_api.post("img2img", {**body, "script_args": [None, 64, 8, ["sideways"]]})
    assert sideways.status_code == 422 and "script_args[3]" in sideways.text and "left, right" in sideways.text
    huge = live_api.post("img2img", {**body, "script_args": [None, 5000, 8, ["left"]]})
    assert huge.status_code == 422 and "script_args[1]" in huge.text
