"""Bad input gets a 4xx whose detail names the field; the server keeps serving."""

from __future__ import annotations

import base64

import pytest
from api_server import png_b64
from PIL import Image


def assert_error(response, status: int, field: str) -> dict:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert body["detail"].startswith(f"{field}:"), body["detail"]
    return body


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"width": "wide"}, "width"),
        ({"width": 0}, "width"),
        ({"width": 100000}, "width"),
        ({"height": 100}, "height"),
        ({"steps": -1}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"n_iter": 0}, "n_iter"),
        ({"batch_size": 1000}, "batch_size"),
        ({"seed": 2**40}, "seed"),
        ({"cfg_scale": "NaN"}, "cfg_scale"),
        ({"distilled_cfg_scale": 99}, "distilled_cfg_scale"),
        ({"prompt": 5}, "prompt"),
        ({"prompt": "x" * 1_000_000}, "prompt"),
        ({"prompt": "a cat\nNegative prompt: dogs"}, "prompt"),
        ({"override_settings": "sd3"}, "override_settings"),
        ({"override_settings": {"sd_model_checkpoint": 3}}, "override_settings.sd_model_checkpoint"),
        ({"send_images": "perhaps"}, "send_images"),
    ],
)
def test_txt2img_bad_fields(live_api, tiny, change, field):
    assert_error(live_api.post("txt2img", {**tiny, **change}), 422, field)


def test_messages_say_what_is_allowed(live_api, tiny):
    assert "allowed 64..4096" in live_api.post("txt2img", {**tiny, "width": 0}).json()["detail"]
    assert "multiple of 16" in live_api.post("txt2img", {**tiny, "width": 100}).json()["detail"]
    assert "20,000" in live_api.post("txt2img", {**tiny, "prompt": "x" * 30_000}).json()["detail"]


def test_malformed_json_and_non_object_bodies(live_api):
    url = live_api.url("txt2img")
    headers = {"Content-Type": "application/json"}
    body = assert_error(live_api.client.post(url, content=b'{"prompt": ', headers=headers), 422, "body")
    assert "invalid JSON" in body["detail"]
    assert_error(live_api.client.post(url, content=b'{"cfg_scale": NaN}', headers=headers), 422, "cfg_scale")
    assert_error(live_api.client.post(url, content=b"[1, 2]", headers=headers), 422, "body")
    assert_error(live_api.client.post(url, content=b"", headers=headers), 422, "body")
    assert_error(live_api.client.post(url, content=b"\xff\xfe\x00", headers=headers), 400, "body")
    deep = live_api.client.post(url, content=b"[" * 100_000 + b"]" * 100_000, headers=headers)
    assert deep.status_code in (400, 422) and deep.json()["detail"].startswith("body:")


def test_unknown_model_is_404_naming_the_available_ones(live_api, tiny):
    body = {**tiny, "override_settings": {"sd_model_checkpoint": "v1-5-pruned.safetensors [6ce0161689]"}}
    detail = assert_error(live_api.post("txt2img", body), 404, "override_settings.sd_model_checkpoint")["detail"]
    assert "easel-demo-flux" in detail and "easel-demo-sd3" in detail


def test_a1111_title_forms_find_the_model(live_api, tiny):
    body = {**tiny, "override_settings": {"sd_model_checkpoint": "demo/easel-demo-sd3.safetensors [0123456789]"}}
    response = live_api.post("txt2img", body)
    assert response.status_code == 200, response.text


def test_unreadable_model_is_409(live_api, tiny):
    body = {**tiny, "override_settings": {"sd_model_checkpoint": "broken-model"}}
    response = live_api.post("txt2img", body)
    assert response.status_code == 409, response.text
    assert "broken-model" in response.json()["detail"]


def _truncated_png(image: Image.Image) -> str:
    data = base64.b64decode(png_b64(image))
    return base64.b64encode(data[: len(data) // 2]).decode()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"init_images": []}, "init_images"),
        ({"init_images": None}, "init_images"),
        ({"init_images": ["not base64 at all!"]}, "init_images[0]"),
        ({"init_images": [base64.b64encode(b"hello, not an image").decode()]}, "init_images[0]"),
        ({"init_images": ["data:image/png;base64,"]}, "init_images[0]"),
        ({"init_images": [7]}, "init_images[0]"),
        ({"denoising_strength": 2}, "denoising_strength"),
        ({"resize_mode": 9}, "resize_mode"),
        ({"inpainting_fill": 7}, "inpainting_fill"),
        ({"mask": "@@@"}, "mask"),
        ({"mask": png_b64(Image.new("L", (64, 64), 255)), "mask_blur": -3}, "mask_blur"),
    ],
)
def test_img2img_bad_fields(live_api, checker, tiny, change, field):
    body = {**tiny, "init_images": [png_b64(checker)], **change}
    assert_error(live_api.post("img2img", body), 422, field)


def test_truncated_png_is_422(live_api, tiny):
    big = Image.effect_noise((128, 128), 64).convert("RGB")
    body = assert_error(live_api.post("img2img", {**tiny, "init_images": [_truncated_png(big)]}), 422, "init_images[0]")
    assert "not a valid base64 image" in body["detail"]


def test_mask_of_another_size_is_422(live_api, checker, tiny):
    body = {**tiny, "init_images": [png_b64(checker)], "mask": png_b64(Image.new("L", (32, 32), 255))}
    detail = assert_error(live_api.post("img2img", body), 422, "mask")["detail"]
    assert "32x32" in detail and "64x64" in detail


def test_inpaint_padding_out_of_range(live_api, checker, tiny):
    body = {**tiny, "init_images": [png_b64(checker)], "mask": png_b64(Image.new("L", (64, 64), 255)),
            "inpaint_full_res": True, "inpaint_full_res_padding": 5000}
    assert_error(live_api.post("img2img", body), 422, "inpaint_full_res_padding")


def test_oversized_image_is_refused_before_decoding(live_api, tiny):
    huge = Image.new("1", (9000, 16))
    assert_error(live_api.post("img2img", {**tiny, "init_images": [png_b64(huge)]}), 422, "init_images[0]")


def test_bad_options(live_api):
    assert_error(live_api.post("options", {"sd_model_checkpoint": 5}), 422, "sd_model_checkpoint")
    assert_error(live_api.post("options", {"show_progress_every_n_steps": -2}), 422, "show_progress_every_n_steps")
    assert_error(live_api.post("options", {"sd_model_checkpoint": "nope"}), 404, "sd_model_checkpoint")
    assert_error(live_api.post("options", [1]), 422, "body")


def test_server_still_serves_after_all_that(live_api, tiny):
    response = live_api.post("txt2img", tiny)
    assert response.status_code == 200 and len(response.json()["images"]) == 1
