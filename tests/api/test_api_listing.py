"""The GET lists and the model management routes, as A1111 clients read them at start-up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest


def get_ok(live_api, path):
    response = live_api.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_sd_models_lists_ready_models_with_cheap_hashes(live_api):
    models = get_ok(live_api, "sd-models")
    assert [m["model_name"] for m in models] == ["easel-demo-flux", "easel-demo-sd3"]  # not the broken one
    flux = models[0]
    assert flux["title"] == "easel-demo-flux [demo (random weights)]"
    assert re.fullmatch(r"[0-9a-f]{10}", flux["hash"]) and re.fullmatch(r"[0-9a-f]{64}", flux["sha256"])
    assert flux["sha256"].startswith(flux["hash"])
    assert Path(flux["filename"]).name == "easel-demo-flux" and flux["config"] is None


def test_the_listed_hash_is_the_one_in_the_infotext(live_api, tiny):
    listed = {m["model_name"]: m["hash"] for m in get_ok(live_api, "sd-models")}
    info = live_api.post("txt2img", tiny).json()["info"]
    assert f"Model hash: {listed['easel-demo-flux']}" in info


def test_samplers_schedulers_upscalers(live_api):
    assert [s["name"] for s in get_ok(live_api, "samplers")] == ["Euler"]
    assert get_ok(live_api, "schedulers")[0]["label"] == "Simple"
    upscalers = get_ok(live_api, "upscalers")
    assert [u["name"] for u in upscalers] == ["None", "Lanczos", "Nearest"]
    assert set(upscalers[0]) == {"name", "model_name", "model_path", "model_url", "scale"}


def test_loras_and_vaes_come_from_the_catalog(live_api):
    loras = get_ok(live_api, "loras")
    assert [(lora["name"], Path(lora["path"]).name) for lora in loras] == [("tiny-detail", "tiny-detail.safetensors")]
    assert get_ok(live_api, "sd-vae") == []


def test_empty_lists_and_scripts(live_api):
    assert get_ok(live_api, "prompt-styles") == []
    assert get_ok(live_api, "extensions") == []
    assert get_ok(live_api, "scripts") == {"txt2img": [], "img2img": []}
    assert get_ok(live_api, "embeddings") == {"loaded": {}, "skipped": {}}


@pytest.mark.parametrize("path", ["script-info", "hypernetworks", "face-restorers", "realesrgan-models",
                                  "latent-upscale-modes"])
def test_lists_easel_does_not_have_yet_are_empty(live_api, path):
    assert get_ok(live_api, path) == []


def test_cmd_flags(live_api):
    flags = get_ok(live_api, "cmd-flags")
    assert flags["models_dir"] == str(live_api.engine.settings.models_dir)
    assert flags["api"] is True and flags["api_auth"] is False and flags["device"] == "cpu"


def test_memory_reports_the_server_process_and_the_machine(live_api):
    import psutil

    ram = get_ok(live_api, "memory")["ram"]
    assert ram["total"] == psutil.virtual_memory().total and ram["free"] + ram["used"] == ram["total"]
    rss = psutil.Process().memory_info().rss  # the test server runs in this process
    assert rss / 2 < ram["used"] < rss * 2


def test_memory_without_cuda_says_it_is_unavailable(live_api):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert get_ok(live_api, "memory")["cuda"] == {"error": "unavailable"}  # A1111's answer without CUDA


def test_memory_with_cuda_reports_the_gpu(live_api):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("this machine has no CUDA")
    cuda = get_ok(live_api, "memory")["cuda"]
    assert cuda["system"]["total"] == torch.cuda.mem_get_info()[1]
    assert cuda["system"]["free"] + cuda["system"]["used"] == cuda["system"]["total"]
    for counter in ("active", "allocated", "reserved", "inactive"):
        assert 0 <= cuda[counter]["current"] <= cuda[counter]["peak"], counter
    assert cuda["allocated"]["peak"] <= cuda["reserved"]["peak"]


def test_options_defaults(live_api):
    options = get_ok(live_api, "options")
    assert options["sd_model_checkpoint"] == "easel-demo-flux [demo (random weights)]"
    assert options["show_progress_every_n_steps"] == 3 and options["samples_format"] == "png"


def test_refresh_finds_new_files(live_api):
    assert live_api.post("refresh-checkpoints").json() == {"models": 3}
    lora_dir = live_api.engine.settings.models_dir / "loras"
    (lora_dir / "second.safetensors").write_bytes((lora_dir / "tiny-detail.safetensors").read_bytes())
    try:
        assert live_api.post("refresh-loras").json() is None  # A1111 answers null
        assert [lora["name"] for lora in get_ok(live_api, "loras")] == ["second", "tiny-detail"]
    finally:
        (lora_dir / "second.safetensors").unlink()
        live_api.post("refresh-checkpoints")
    assert live_api.post("refresh-vae").status_code == 200


def test_unload_and_reload_checkpoint(live_api, tiny):
    assert live_api.post("txt2img", tiny).status_code == 200
    assert "easel-demo-flux" in live_api.engine.loaded_models
    assert live_api.post("unload-checkpoint").json() == {"unloaded": ["easel-demo-flux"]}
    assert live_api.engine.loaded_models == []
    reload = live_api.post("reload-checkpoint")
    assert reload.status_code == 200 and reload.json()["model"].startswith("easel-demo-flux")
    assert live_api.post("txt2img", tiny).status_code == 200  # loads again on demand


def test_docs_and_openapi(live_api):
    docs = live_api.client.get(f"{live_api.base_url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = live_api.client.get(f"{live_api.base_url}/openapi.json").json()
    for path in ("txt2img", "img2img", "extra-single-image", "extra-batch-images", "png-info", "progress",
                 "interrupt", "skip", "options", "sd-models", "samplers", "schedulers", "upscalers", "loras",
                 "sd-vae", "prompt-styles", "cmd-flags", "memory", "scripts", "extensions",
                 "refresh-checkpoints", "unload-checkpoint", "reload-checkpoint"):
        assert f"/sdapi/v1/{path}" in schema["paths"], path
    txt2img = schema["components"]["schemas"]["Txt2ImgRequest"]["properties"]
    assert "model's default" in txt2img["steps"]["description"]
