"""/sdapi/v1/loras and /refresh-loras as A1111 serves them: name, alias, path and the file's metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

TAGS = {"10_ink": {"ink wash": 12, "mountains": 3}}
KOHYA_KEYS = ("lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight",
              "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight")


@pytest.fixture
def kohya_lora(live_api):
    """A kohya FLUX LoRA dropped into the running server's loras folder, with a civitai .json beside it."""
    live_api.get("loras")  # the folder is scanned before the file arrives
    folder = live_api.engine.settings.models_dir / "loras"
    path = folder / "inkwash_v2.safetensors"
    save_file({k: torch.zeros(1, 1) for k in KOHYA_KEYS}, str(path), metadata={
        "ss_output_name": "InkWash", "ss_tag_frequency": json.dumps(TAGS), "ss_network_dim": "16",
        "ss_base_model_version": "flux1", "ssmd_cover_images": json.dumps(["iVBORw0KGgo..."])})
    path.with_suffix(".json").write_text(json.dumps({"activation text": "ink wash"}))
    yield path
    path.unlink()
    path.with_suffix(".json").unlink()
    live_api.post("refresh-loras")


def loras_by_name(live_api) -> dict[str, dict]:
    response = live_api.get("loras")
    assert response.status_code == 200, response.text
    return {lora["name"]: lora for lora in response.json()}


def test_refresh_loras_answers_null_and_finds_a_new_file(live_api, kohya_lora):
    assert "inkwash_v2" not in loras_by_name(live_api)  # not scanned yet
    response = live_api.post("refresh-loras")
    assert response.status_code == 200 and response.json() is None
    assert set(loras_by_name(live_api)) == {"inkwash_v2", "tiny-detail"}


def test_loras_list_alias_path_and_metadata_as_a1111(live_api, kohya_lora):
    live_api.post("refresh-loras")
    lora = loras_by_name(live_api)["inkwash_v2"]
    assert set(lora) == {"name", "alias", "path", "metadata"}
    assert lora["alias"] == "InkWash"  # kohya's ss_output_name
    assert Path(lora["path"]) == kohya_lora
    # A1111 decodes the values that hold a JSON object, keeps the others as text, drops cover images
    assert lora["metadata"] == {"ss_tag_frequency": TAGS, "ss_network_dim": "16", "ss_base_model_version": "flux1",
                                "ss_output_name": "InkWash"}
    assert list(lora["metadata"])[0] == "ss_tag_frequency"


def test_a_lora_without_metadata_is_listed_under_its_file_name(live_api):
    lora = loras_by_name(live_api)["tiny-detail"]
    assert (lora["alias"], Path(lora["path"]).name, lora["metadata"]) == (
        "tiny-detail", "tiny-detail.safetensors", {})
