"""Upscaling (extra-single-image, extra-batch-images), png-info, and the upscaler registry itself."""

from __future__ import annotations

import numpy as np
import pytest
from api_server import decode_png, png_b64
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from app.errors import InvalidRequest
from app.upscale import UnknownUpscaler, available_upscalers, find_upscaler, target_size, upscale


def test_single_image_by_scale_keeps_the_infotext(live_api, checker):
    meta = PngInfo()
    meta.add_text("parameters", "a cat\nSteps: 4, Sampler: Euler, Seed: 9, Size: 64x64")
    body = {"image": "data:image/png;base64," + png_b64(checker, pnginfo=meta), "upscaler_1": "Lanczos",
            "upscaling_resize": 2}
    response = live_api.post("extra-single-image", body)
    assert response.status_code == 200, response.text
    out = decode_png(response.json()["image"])
    assert out.size == (128, 128)
    assert out.text["parameters"].startswith("a cat\n")
    assert "Lanczos" in response.json()["html_info"]


def test_nearest_doubles_each_pixel(live_api, checker):
    response = live_api.post("extra-single-image", {"image": png_b64(checker), "upscaler_1": "nearest",
                                                    "upscaling_resize": 2})
    out = np.asarray(decode_png(response.json()["image"]).convert("RGB"))
    expected = np.asarray(checker).repeat(2, axis=0).repeat(2, axis=1)
    assert np.array_equal(out, expected)


def test_to_a_size_with_crop_and_without(live_api, checker):
    base = {"image": png_b64(checker), "upscaler_1": "Lanczos", "resize_mode": 1,
            "upscaling_resize_w": 200, "upscaling_resize_h": 100}
    assert decode_png(live_api.post("extra-single-image", base).json()["image"]).size == (200, 100)
    uncropped = live_api.post("extra-single-image", {**base, "upscaling_crop": False})
    assert decode_png(uncropped.json()["image"]).size == (200, 200)  # A1111: scale by the larger ratio


def test_upscaler_none_returns_the_image_unchanged(live_api, checker):
    response = live_api.post("extra-single-image", {"image": png_b64(checker), "upscaler_1": "None"})
    assert np.array_equal(np.asarray(decode_png(response.json()["image"]).convert("RGB")), np.asarray(checker))


def test_second_upscaler_is_blended(live_api, checker):
    body = {"image": png_b64(checker), "upscaler_1": "Nearest", "upscaler_2": "Lanczos",
            "extras_upscaler_2_visibility": 0.5, "upscaling_resize": 2}
    response = live_api.post("extra-single-image", body)
    assert response.status_code == 200 and "Lanczos" in response.json()["html_info"]


def test_batch_images(live_api, checker):
    body = {"imageList": [{"data": png_b64(checker), "name": "a.png"},
                          {"data": png_b64(Image.new("RGB", (32, 16), "white")), "name": "b.png"}],
            "upscaler_1": "Lanczos", "upscaling_resize": 1.5}
    response = live_api.post("extra-batch-images", body)
    assert response.status_code == 200, response.text
    assert [decode_png(d).size for d in response.json()["images"]] == [(96, 96), (48, 24)]
    assert "a.png" in response.json()["html_info"]


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("extra-single-image", {"upscaler_1": "R-ESRGAN 4x+"}, 404, "upscaler_1"),
        ("extra-single-image", {"upscaler_1": "Lanczos", "upscaling_resize": 200}, 422, "upscaling_resize"),
        ("extra-single-image", {"upscaler_1": "Lanczos", "upscaling_resize": 0}, 422, "upscaling_resize"),
        ("extra-single-image", {"upscaler_1": "Lanczos", "upscaling_resize": -1}, 422, "upscaling_resize"),
        ("extra-single-image", {"upscaler_1": "Lanczos", "resize_mode": 1, "upscaling_resize_w": 9000},
         422, "upscaling_resize_w"),
        ("extra-single-image", {"upscaler_1": "Lanczos", "resize_mode": 5}, 422, "resize_mode"),
        ("extra-single-image", {"image": "%%%"}, 422, "image"),
        ("extra-batch-images", {"imageList": [{"name": "x"}]}, 422, "imageList[0].data"),
        ("extra-batch-images", {"imageList": [{"data": None, "name": "x"}]}, 422, "imageList[0].data"),
        ("png-info", {"image": "bm90IGFuIGltYWdl"}, 422, "image"),
        ("png-info", {}, 422, "image"),
    ],
)
def test_extras_errors_name_the_field(live_api, checker, path, body, status, field):
    if path == "extra-single-image":
        body = {"image": png_b64(checker), **body}
    response = live_api.post(path, body)
    assert response.status_code == status, response.text
    assert response.json()["detail"].startswith(f"{field}:"), response.json()["detail"]


def test_unknown_upscaler_lists_the_available_ones(live_api, checker):
    body = {"image": png_b64(checker), "upscaler_1": "4x-UltraSharp"}
    detail = live_api.post("extra-single-image", body).json()["detail"]
    assert "Lanczos" in detail and "Nearest" in detail


def test_batch_error_names_the_bad_image(live_api, checker):
    body = {"imageList": [{"data": png_b64(checker), "name": "ok"}, {"data": "bad!", "name": "bad"}],
            "upscaler_1": "Lanczos"}
    response = live_api.post("extra-batch-images", body)
    assert response.status_code == 422 and response.json()["detail"].startswith("imageList[1].data:")


def test_png_info_of_plain_and_comfyui_images(live_api, checker):
    plain = live_api.post("png-info", {"image": png_b64(checker)}).json()
    assert plain == {"info": "", "items": {}, "parameters": {}}
    meta = PngInfo()
    meta.add_text("prompt", '{"3": {"class_type": "KSampler"}}')
    comfy = live_api.post("png-info", {"image": png_b64(checker, pnginfo=meta)}).json()
    assert comfy["info"] == "" and "KSampler" in comfy["items"]["prompt"]


# The registry without a server.

def test_registry_lists_the_builtins():
    assert [u.name for u in available_upscalers(None)] == ["None", "Lanczos", "Nearest"]
    assert find_upscaler("lanczos", available_upscalers()).name == "Lanczos"
    with pytest.raises(UnknownUpscaler, match="available: None, Lanczos, Nearest"):
        find_upscaler("SwinIR 4x", available_upscalers())


def test_upscale_by_scale_or_size(checker):
    assert upscale(checker, "Lanczos", scale=2).size == (128, 128)
    assert upscale(checker, "Nearest", size=(10, 300)).size == (10, 300)
    assert upscale(checker, "None", scale=4) is checker


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"scale": 129}, "scale"), ({"scale": 0}, "scale"), ({"scale": float("nan")}, "scale"),
     ({"size": (8193, 10)}, "size"), ({"size": (0, 10)}, "size")],
)
def test_target_size_limits(kw, field):
    with pytest.raises(InvalidRequest) as err:
        target_size((64, 64), **kw)
    assert err.value.field == field
    assert target_size((64, 64), scale=128) == (8192, 8192)
