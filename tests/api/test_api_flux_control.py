"""A FLUX.1 Canny/Depth LoRA in models/controlnet is one more sd-webui-controlnet model to API clients:
listed by /controlnet/model_list as "name [hash]", and taken by a webuiapi unit naming it that way, as the
first request each launch mode answers."""

from __future__ import annotations

import json

import httpx
import pytest
import torch
from api_server import LAUNCH_MODES, api_settings, decode_png, png_b64, serve_mode
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from app.settings import PROJECT_ROOT

DEMO = PROJECT_ROOT / "models" / "demo"
NAME = "flux1-canny-dev-lora"


def control_lora(width: int, head: int) -> dict:
    """BFL's control LoRA names: an img_in LoRA reading 128 channels (image + control latents), a norm scale."""
    g = torch.Generator().manual_seed(3)
    return {"img_in.lora_A.weight": torch.randn(4, 128, generator=g) * 0.3,
            "img_in.lora_B.weight": torch.randn(width, 4, generator=g) * 0.3,
            "img_in.lora_B.bias": torch.zeros(width),
            "double_blocks.0.img_attn.norm.key_norm.scale": torch.ones(head)}


@pytest.fixture(scope="module", params=LAUNCH_MODES)
def served(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("flux-control-api")
    models = root / "models"
    (models / "controlnet").mkdir(parents=True)
    (models / "demo").symlink_to(DEMO, target_is_directory=True)
    config = json.loads((DEMO / "easel-demo-shapes-flux" / "transformer" / "config.json").read_text())
    head = config["attention_head_dim"]
    save_file(control_lora(head * config["num_attention_heads"], head),
              str(models / "controlnet" / f"{NAME}.safetensors"))
    server = serve_mode(request.param, api_settings(models, root / "out"))
    client = httpx.Client(timeout=120)
    try:
        yield server, client
    finally:
        client.close()
        server.close()


def edges() -> str:
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).rectangle((8, 16, 30, 40), outline="black", width=4)
    return png_b64(image)


def test_a_webuiapi_unit_naming_a_control_lora_as_listed_runs_it(served):
    server, client = served
    unit = {"image": edges(), "module": "canny", "model": f"{NAME} [00000000]", "weight": 1.0,
            "resize_mode": "Crop and Resize", "processor_res": 512, "threshold_a": 100, "threshold_b": 200,
            "guidance_start": 0.0, "guidance_end": 1.0, "control_mode": 0, "pixel_perfect": False,
            "enabled": True, "save_detected_map": False}
    body = {"prompt": "a red square", "width": 64, "height": 64, "steps": 2, "seed": 1, "cfg_scale": 1,
            "alwayson_scripts": {"ControlNet": {"args": [unit]}}}
    response = client.post(f"{server.base_url}/sdapi/v1/txt2img", json=body)
    assert response.status_code == 200, response.text[:500]
    info = json.loads(response.json()["info"])
    assert decode_png(response.json()["images"][0]).size == (64, 64)
    assert f'ControlNet 0: "Module: canny, Model: {NAME} [' in info["infotexts"][0]
    listed = client.get(f"{server.base_url}/controlnet/model_list").json()["model_list"]
    assert [m.split(" [")[0] for m in listed] == [NAME]
