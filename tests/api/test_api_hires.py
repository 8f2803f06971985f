"""A1111's hires fix over the API, in each launch mode: enable_hr gives the larger picture with A1111's
infotext keys, hr_resize_x/y and Forge's hr_cfg / hr_distilled_cfg are honoured, and a bad hr_* field is
a 422 naming it."""

from __future__ import annotations

import json

from api_server import decode_png

from app.generation.infotext import parse_infotext


def generate(live_api, body):
    response = live_api.post("txt2img", body)
    assert response.status_code == 200, response.text
    return response.json()


def test_enable_hr_gives_the_picture_hr_scale_times_larger(live_api, tiny):
    body = generate(live_api, {**tiny, "enable_hr": True, "hr_scale": 2, "hr_upscaler": "Lanczos",
                               "denoising_strength": 0.5})
    image = decode_png(body["images"][0])
    assert image.size == (128, 128)
    info = json.loads(body["info"])
    params = parse_infotext(info["infotexts"][0]).params
    assert params["Size"] == "64x64" and float(params["Hires upscale"]) == 2
    assert params["Hires upscaler"] == "Lanczos" and float(params["Denoising strength"]) == 0.5
    assert "enable_hr" not in info["ignored_fields"] and "hr_scale" not in info["ignored_fields"]


def test_hr_resize_second_pass_steps_and_forge_cfg(live_api, tiny):
    body = generate(live_api, {**tiny, "enable_hr": True, "hr_resize_x": 96, "hr_resize_y": 128,
                               "hr_upscaler": "Latent", "hr_second_pass_steps": 3, "hr_cfg": 2.5,
                               "hr_checkpoint_name": "Use same checkpoint", "hr_sampler_name": "Use same sampler"})
    assert decode_png(body["images"][0]).size == (96, 128)
    info = json.loads(body["info"])
    params = parse_infotext(info["infotexts"][0]).params
    assert params["Hires resize"] == "96x128" and params["Hires steps"] == "3"
    assert float(params["Hires CFG Scale"]) == 2.5
    assert not {"hr_checkpoint_name", "hr_sampler_name"} & set(info["ignored_fields"])


def test_hr_fields_without_enable_hr_change_nothing(live_api, tiny):
    body = generate(live_api, {**tiny, "hr_scale": 2, "hr_upscaler": "Lanczos"})
    assert decode_png(body["images"][0]).size == (64, 64)


def test_a_bad_hires_field_is_a_422_naming_it(live_api, tiny):
    unknown = live_api.post("txt2img", {**tiny, "enable_hr": True, "hr_upscaler": "R-ESRGAN 9x"})
    assert unknown.status_code == 422
    assert "hr_upscaler" in unknown.text and "Lanczos" in unknown.text
    too_large = live_api.post("txt2img", {**tiny, "enable_hr": True, "hr_scale": 20})
    assert too_large.status_code == 422 and "hr_scale" in too_large.text
    assert live_api.post("txt2img", tiny).status_code == 200  # and it keeps serving


def test_refiner_checkpoint_refines_with_the_other_model_after_refiner_switch_at(live_api, tiny):
    sd3 = next(m["title"] for m in live_api.get("sd-models").json() if m["model_name"] == "easel-demo-sd3")
    body = generate(live_api, {**tiny, "refiner_checkpoint": sd3, "refiner_switch_at": 0.6})
    info = json.loads(body["info"])
    params = parse_infotext(info["infotexts"][0]).params
    assert params["Refiner"].startswith("easel-demo-sd3") and float(params["Refiner denoise"]) == 0.4
    assert params["Seed"] == "1" and not {"refiner_checkpoint", "refiner_switch_at"} & set(info["ignored_fields"])
    plain = decode_png(generate(live_api, {**tiny, "refiner_checkpoint": "None"})["images"][0])
    assert decode_png(body["images"][0]).size == plain.size == (64, 64)
    assert decode_png(body["images"][0]).tobytes() != plain.tobytes()


def test_a_bad_refiner_field_is_a_4xx_naming_it(live_api, tiny):
    unknown = live_api.post("txt2img", {**tiny, "refiner_checkpoint": "sdxl_refiner_9"})
    assert unknown.status_code == 404 and "refiner_checkpoint" in unknown.text
    wrong = live_api.post("txt2img", {**tiny, "refiner_checkpoint": "easel-demo-sd3", "refiner_switch_at": 1.5})
    assert wrong.status_code == 422 and "refiner_switch_at" in wrong.text
    assert live_api.post("txt2img", tiny).status_code == 200


def test_hr_checkpoint_name_runs_the_hires_pass_with_that_model(live_api, tiny):
    sd3 = next(m["title"] for m in live_api.get("sd-models").json() if m["model_name"] == "easel-demo-sd3")
    body = generate(live_api, {**tiny, "enable_hr": True, "hr_scale": 2, "hr_upscaler": "Lanczos",
                               "denoising_strength": 0.5, "hr_checkpoint_name": sd3})
    assert decode_png(body["images"][0]).size == (128, 128)
    info = json.loads(body["info"])
    params = parse_infotext(info["infotexts"][0]).params
    assert params["Model"] == "easel-demo-flux" and params["Refiner"].startswith("easel-demo-sd3")
    assert params["Refiner denoise"] == "0.5" and params["Hires upscale"] == "2"
    assert "hr_checkpoint_name" not in info["ignored_fields"]
    unknown = live_api.post("txt2img", {**tiny, "enable_hr": True, "hr_checkpoint_name": "nope.safetensors"})
    assert unknown.status_code == 404 and "hr_checkpoint_name" in unknown.text
