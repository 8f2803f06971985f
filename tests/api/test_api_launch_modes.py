"""Each launch mode as a user starts it: `--nowebui` and `--api` beside the web UI answer alike.

The first request the moment the port answers is served (no warm-up race), /docs is there, bad input
is a 4xx naming the field, the extensions act and their failing routes say whose they are.
"""

from __future__ import annotations

import base64
import io
import textwrap
from dataclasses import replace

import httpx
import pytest
from api_server import LAUNCH_MODES, api_settings, png_b64, serve_mode
from PIL import Image

from app.generation.infotext import parse_infotext

EXTENSION = '''
import pluggy
from fastapi import HTTPException

hookimpl = pluggy.HookimplMarker("easel")


@hookimpl
def adjust_request(request):
    return request.model_copy(update={"prompt": request.prompt + ", seen by probe"})


@hookimpl
def register_api_routes(router):
    @router.get("/ok")
    def ok():
        return {"ok": True}

    @router.get("/broken")
    def broken():
        raise RuntimeError("the probe is broken")

    @router.get("/refused")
    def refused():
        raise HTTPException(status_code=418, detail="not today")
'''


@pytest.fixture(scope="module")
def extensions_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("extensions")
    (root / "probe").mkdir()
    (root / "probe" / "extension.toml").write_text('name = "probe"\nversion = "1.0.0"\nrequires = ">=0.1"\n')
    (root / "probe" / "__init__.py").write_text(textwrap.dedent(EXTENSION))
    return root


@pytest.fixture(scope="module", params=LAUNCH_MODES)
def fresh(request, api_models_dir, extensions_dir, tmp_path_factory):
    """A server started for this module alone, so its first request really is its first."""
    outputs = tmp_path_factory.mktemp("first-outputs")
    settings = replace(api_settings(api_models_dir, outputs), extensions_dir=extensions_dir)
    served = serve_mode(request.param, settings)
    client = httpx.Client(base_url=served.base_url, timeout=120)
    first = client.post("/sdapi/v1/txt2img", json={"prompt": "a red circle on a blue background", "width": 64,
                                                   "height": 64, "steps": 2, "seed": 3})
    try:
        yield client, first
    finally:
        client.close()
        served.close()


def test_the_first_request_after_start_makes_its_image(fresh):
    _, first = fresh
    assert first.status_code == 200, first.text[:300]
    image = Image.open(io.BytesIO(base64.b64decode(first.json()["images"][0])))
    assert image.size == (64, 64)


def test_extensions_act_in_every_mode(fresh):
    _, first = fresh
    info = parse_infotext(Image.open(io.BytesIO(base64.b64decode(first.json()["images"][0]))).text["parameters"])
    assert info.prompt.endswith(", seen by probe")


def test_docs_are_served(fresh):
    client, _ = fresh
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/sdapi/v1/txt2img" in paths and "/sdapi/v1/ext/probe/ok" in paths


def test_a_failing_extension_route_names_the_extension_and_the_server_goes_on(fresh):
    client, _ = fresh
    broken = client.get("/sdapi/v1/ext/probe/broken")
    assert broken.status_code == 500
    assert broken.json() == {"error": "ExtensionError", "extension": "probe",
                             "detail": "extension 'probe' failed: RuntimeError: the probe is broken"}
    refused = client.get("/sdapi/v1/ext/probe/refused")  # an HTTP error on purpose keeps its status
    assert refused.status_code == 418 and "not today" in refused.json()["detail"]
    assert client.get("/sdapi/v1/ext/probe/ok").json() == {"ok": True}


TINY = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 1, "seed": 1}
PNG = png_b64(Image.new("RGB", (64, 64), (200, 30, 30)))
OTHER_SIZE_MASK = png_b64(Image.new("L", (32, 48), 255))
TRUNCATED = base64.b64encode(base64.b64decode(PNG)[:40]).decode()

# (method, path, body, status, field the detail starts with)
BAD = [
    ("txt2img", {**TINY, "width": 0}, 422, "width"),
    ("txt2img", {**TINY, "width": 257}, 422, "width"),
    ("txt2img", {**TINY, "width": 100000}, 422, "width"),
    ("txt2img", {**TINY, "steps": -1}, 422, "steps"),
    ("txt2img", {**TINY, "batch_size": 10000}, 422, "batch_size"),
    ("txt2img", {**TINY, "prompt": "x" * 1_000_000}, 422, "prompt"),
    ("txt2img", {**TINY, "override_settings": {"sd_model_checkpoint": "no-such-model"}}, 404,
     "override_settings.sd_model_checkpoint"),
    ("txt2img", {**TINY, "override_settings": {"sd_model_checkpoint": "../../etc/passwd"}}, 404,
     "override_settings.sd_model_checkpoint"),
    ("img2img", {**TINY, "init_images": ["not base64 at all!"]}, 422, "init_images[0]"),
    ("img2img", {**TINY, "init_images": [base64.b64encode(b"hello, not an image").decode()]}, 422,
     "init_images[0]"),
    ("img2img", {**TINY, "init_images": [TRUNCATED]}, 422, "init_images[0]"),
    ("img2img", {**TINY, "init_images": [PNG], "denoising_strength": 5}, 422, "denoising_strength"),
    ("img2img", {**TINY, "init_images": [PNG], "mask": OTHER_SIZE_MASK}, 422, "mask"),
    ("extra-single-image", {"image": PNG, "upscaler_1": "Lanczos", "upscaling_resize": 1000}, 422, "upscaling_resize"),
    ("png-info", {"image": "%%%"}, 422, "image"),
    ("options", {"show_progress_every_n_steps": "often"}, 422, "show_progress_every_n_steps"),
]


@pytest.mark.parametrize(("path", "body", "status", "field"), BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_is_a_4xx_naming_the_field(fresh, path, body, status, field):
    client, _ = fresh
    response = client.post(f"/sdapi/v1/{path}", json=body)
    assert response.status_code == status, response.text[:300]
    assert response.json()["detail"].startswith(f"{field}"), response.json()["detail"]


def test_json_nan_and_a_broken_body_are_4xx(fresh):
    client, _ = fresh
    nan = client.post("/sdapi/v1/txt2img", content='{"prompt": "x", "cfg_scale": NaN}',
                      headers={"Content-Type": "application/json"})
    assert nan.status_code == 422 and nan.json()["detail"].startswith("cfg_scale")
    broken = client.post("/sdapi/v1/txt2img", content=b'{"prompt": ', headers={"Content-Type": "application/json"})
    assert broken.status_code == 422 and "JSON" in broken.json()["detail"]
    assert client.get("/sdapi/v1/sd-models").status_code == 200  # still serving


def test_an_unknown_api_path_is_the_apis_own_404_in_every_mode(fresh):
    client, _ = fresh
    missing = client.post("/sdapi/v1/interrogate", json={"image": PNG})
    assert missing.status_code == 404
    assert missing.json() == {"error": "NotFound",
                              "detail": "/sdapi/v1/interrogate: no such API route (the routes are listed at /docs)"}
    wrong_method = client.get("/sdapi/v1/txt2img")
    assert wrong_method.status_code == 405 and "POST" in wrong_method.json()["detail"]
