"""The details a LoRA picker and /sdapi/v1/loras show, from tiny files as trainers and civitai leave them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from app.catalog.lora_info import LoraInfoCache, a1111_metadata, family_of_base_model, read_lora_info

KOHYA_FLUX = ("lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight",
              "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight", "lora_unet_double_blocks_0_img_attn_qkv.alpha")
DIFFUSERS_SD3 = ("transformer.transformer_blocks.0.attn.to_q.lora_A.weight",
                 "transformer.transformer_blocks.0.attn.to_q.lora_B.weight")
KOHYA_SDXL = ("lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight",
              "lora_unet_down_blocks_1_attentions_0_proj_in.lora_up.weight")
TAGS = {"10_inkwash": {"ink wash": 40, "mountains": 12, "1girl": 3}, "5_more": {"mountains": 30, "mist": 25,
                                                                                 "river": 1, "boat": 2}}


def write_lora(path: Path, keys=KOHYA_FLUX, metadata: dict[str, str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: torch.zeros(1, 1) for k in keys}, str(path), metadata=metadata)
    return path


def test_kohya_file_gives_alias_trigger_tags_base_model_and_family(tmp_path):
    path = write_lora(tmp_path / "loras" / "inkwash_v2.safetensors", metadata={
        "ss_output_name": "InkWash", "ss_tag_frequency": json.dumps(TAGS), "ss_base_model_version": "flux1",
        "ss_sd_model_name": "flux1-dev.safetensors", "ss_network_dim": "16"})
    info = read_lora_info(path)
    assert (info.name, info.alias, info.path) == ("inkwash_v2", "InkWash", path)
    assert (info.family, info.format) == ("flux", "kohya")
    # both folders counted together: mountains 42, ink wash 40, mist 25, 1girl 3, boat 2; river left out
    assert info.trigger_words == ("mountains", "ink wash", "mist", "1girl", "boat")
    assert info.base_model == "flux1"
    assert info.metadata["ss_network_dim"] == "16" and info.preview is None and info.activation_text == ""


def test_civitai_json_beside_the_file_gives_activation_text_words_weight_and_base_model(tmp_path):
    path = write_lora(tmp_path / "cyber.safetensors", DIFFUSERS_SD3,
                      metadata={"ss_tag_frequency": json.dumps(TAGS), "ss_base_model_version": "sd3"})
    path.with_suffix(".json").write_text(json.dumps({
        "activation text": "cyb3rpunk, neon", "trainedWords": ["cyb3rpunk", "rain"], "sd version": "SD 3.5 Large",
        "preferred weight": 0.7, "description": "Neon city nights"}))
    info = read_lora_info(path)
    assert info.trigger_words == ("cyb3rpunk", "neon", "rain")  # the sidecar's words win over caption tags
    assert info.activation_text == "cyb3rpunk, neon"
    assert (info.base_model, info.preferred_weight, info.description) == ("SD 3.5 Large", 0.7, "Neon city nights")
    assert (info.family, info.format) == ("sd3", "diffusers")


def test_civitai_info_file_and_easel_keys(tmp_path):
    path = write_lora(tmp_path / "paper.safetensors", DIFFUSERS_SD3,
                      metadata={"easel.trigger_words": "papercut", "easel.family": "sd3",
                                "easel.base_model": "easel-demo-shapes-sd3"})
    path.with_name("paper.civitai.info").write_text(json.dumps({"trainedWords": ["papercut", "layered"],
                                                                 "baseModel": "SD 3.5 Medium"}))
    info = read_lora_info(path)
    assert info.trigger_words == ("papercut", "layered")
    assert info.base_model == "SD 3.5 Medium" and info.family == "sd3"


def test_family_from_the_keys_else_from_the_base_model(tmp_path):
    assert read_lora_info(write_lora(tmp_path / "unet.safetensors", KOHYA_SDXL)).family == "sdxl"
    # diffusers names at width 1 say nothing of the family: the base model does
    xl = read_lora_info(write_lora(tmp_path / "xl.safetensors", DIFFUSERS_SD3,
                                   metadata={"ss_base_model_version": "sdxl_base_v1-0"}))
    assert (xl.family, xl.base_model) == ("sdxl", "sdxl_base_v1-0")
    bare = read_lora_info(write_lora(tmp_path / "bare.safetensors", DIFFUSERS_SD3))
    assert (bare.family, bare.base_model, bare.trigger_words, bare.alias) == (None, "", (), "bare")


@pytest.mark.parametrize("width, family", [(3072, "flux"), (2432, "sd3"), (1536, "sd3")])
def test_family_of_a_diffusers_named_lora_from_its_width(tmp_path, width, family):
    """Diffusers names FLUX's double blocks and SD3's joint blocks alike; the width tells them apart."""
    path = tmp_path / "wide.safetensors"
    save_file({DIFFUSERS_SD3[0]: torch.zeros(1, width), DIFFUSERS_SD3[1]: torch.zeros(width, 1)}, str(path))
    assert read_lora_info(path).family == family


@pytest.mark.parametrize("name, family", [("Flux.1 D", "flux"), ("Flux.1 S", "flux"), ("SD 3.5 Large", "sd3"),
                                          ("sd3", "sd3"), ("SDXL 1.0", "sdxl"), ("Pony", "sdxl"), ("SD 1.5", "sd1"),
                                          ("sd_v1", "sd1"), ("sd_v2", "sd1"), ("Other", None), ("", None)])
def test_family_of_base_model_names(name, family):
    assert family_of_base_model(name) == family


def test_preview_beside_the_file_in_a1111_order(tmp_path):
    path = write_lora(tmp_path / "style.safetensors")
    Image.new("RGB", (8, 8)).save(tmp_path / "style.preview.webp")
    assert read_lora_info(path).preview == tmp_path / "style.preview.webp"
    Image.new("RGB", (8, 8)).save(tmp_path / "style.preview.png")
    assert read_lora_info(path).preview == tmp_path / "style.preview.png"
    Image.new("RGB", (8, 8)).save(tmp_path / "style.png")
    assert read_lora_info(path).preview == tmp_path / "style.png"


def test_a_broken_json_beside_the_file_is_ignored(tmp_path):
    path = write_lora(tmp_path / "odd.safetensors", metadata={"ss_output_name": "Odd"})
    path.with_suffix(".json").write_text("{not json")
    info = read_lora_info(path)
    assert (info.alias, info.activation_text, info.family) == ("Odd", "", "flux")


def test_an_unreadable_file_gives_its_name_and_nothing_else(tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(b"\x40\x00\x00\x00\x00\x00\x00\x00{")
    info = read_lora_info(path)
    assert (info.name, info.alias, info.metadata, info.format, info.family) == ("cut", "cut", {}, "unknown", None)


def test_a1111_metadata_decodes_json_objects_orders_keys_and_drops_cover_images():
    raw = {"ss_network_dim": "8", "ss_tag_frequency": json.dumps(TAGS), "ssmd_cover_images": "[\"...\"]",
           "ss_sd_model_name": "flux1-dev", "ss_bad": "{not json", "ss_list": "[1, 2]"}
    served = a1111_metadata(raw)
    assert list(served) == ["ss_sd_model_name", "ss_tag_frequency", "ss_network_dim", "ss_bad", "ss_list"]
    assert served["ss_tag_frequency"] == TAGS
    assert (served["ss_network_dim"], served["ss_bad"], served["ss_list"]) == ("8", "{not json", "[1, 2]")


def test_cache_sees_an_edited_json_and_a_new_preview(tmp_path):
    path = write_lora(tmp_path / "glow.safetensors")
    cache = LoraInfoCache()
    assert cache.infos([path])[0].activation_text == ""
    path.with_suffix(".json").write_text(json.dumps({"activation text": "glowing"}))
    assert cache.infos([path])[0].activation_text == "glowing"
    Image.new("RGB", (8, 8)).save(tmp_path / "glow.jpg")
    assert cache.infos([path])[0].preview == tmp_path / "glow.jpg"
