"""Diffusers folders in a models root and in the Hugging Face cache."""

import json

import pytest
from tinyfiles import flux_bfl_keys, weights_size, write_diffusers_folder, write_json, write_model, write_text

from app.catalog.entry import MISSING, READY, UNREADABLE
from app.catalog.scan import scan_models


def _only(root, **kw):
    models = scan_models([root], **kw).models
    assert len(models) == 1, [m.name for m in models]
    return models[0]


def test_complete_flux_folder_is_ready(tmp_path):
    folder = write_diffusers_folder(tmp_path / "models" / "diffusers" / "FLUX.1-schnell")
    model = _only(tmp_path / "models")
    assert (model.name, model.family, model.variant, model.status) == ("FLUX.1-schnell", "flux", "flux-schnell", READY)
    assert (model.format, model.parts, model.key_layout) == ("diffusers", {"folder": folder}, None)
    assert model.size_bytes == weights_size(folder)


@pytest.mark.parametrize(
    "name, family, kw, variant",
    [
        ("FLUX.1-dev", "flux", {"dev": True}, "flux-dev"),
        ("stable-diffusion-3.5-large", "sd3", {}, "sd3.5-large"),
        ("stable-diffusion-3.5-large-turbo", "sd3", {}, "sd3.5-large-turbo"),
        ("stable-diffusion-3.5-medium", "sd3", {"medium": True}, "sd3.5-medium"),
    ],
)
def test_variant_comes_from_the_transformer_config(tmp_path, name, family, kw, variant):
    write_diffusers_folder(tmp_path / name, family, **kw)
    model = _only(tmp_path)
    assert (model.variant, model.status) == (variant, READY)


def test_sd3_folder_without_t5_is_ready_and_labelled(tmp_path):
    write_diffusers_folder(tmp_path / "sd35", "sd3", t5=False)
    model = _only(tmp_path)
    assert (model.status, model.label) == (READY, "no T5")


def test_a_missing_tokenizer_file_is_named(tmp_path):
    folder = write_diffusers_folder(tmp_path / "flux", "flux")
    (folder / "tokenizer" / "merges.txt").unlink()
    (folder / "tokenizer_2" / "spiece.model").unlink()
    model = _only(tmp_path)
    assert model.status == MISSING
    assert model.problems == (
        f"missing {folder / 'tokenizer' / 'merges.txt'} (or tokenizer.json)",
        f"missing {folder / 'tokenizer_2' / 'spiece.model'} (or tokenizer.json)",
    )


def test_tokenizer_json_alone_is_enough(tmp_path):
    # transformers 5 saves CLIP and T5 tokenizers this way.
    folder = write_diffusers_folder(tmp_path / "flux", "flux")
    (folder / "tokenizer" / "vocab.json").unlink()
    (folder / "tokenizer" / "merges.txt").unlink()
    (folder / "tokenizer_2" / "spiece.model").unlink()
    write_text(folder / "tokenizer" / "tokenizer.json", "{}")
    write_text(folder / "tokenizer_2" / "tokenizer.json", "{}")
    assert _only(tmp_path).ready


def test_missing_component_folder_config_and_weights(tmp_path):
    folder = write_diffusers_folder(tmp_path / "flux", "flux")
    for f in (folder / "vae").iterdir():
        f.unlink()
    (folder / "vae").rmdir()
    (folder / "transformer" / "config.json").unlink()
    (folder / "text_encoder_2" / "model.safetensors").unlink()
    model = _only(tmp_path)
    assert model.status == MISSING
    assert set(model.problems) == {
        f"missing {folder / 'vae'}/ (AutoencoderKL)",
        f"missing {folder / 'transformer' / 'config.json'}",
        f"missing {folder / 'text_encoder_2' / 'model.safetensors'}",
    }


def test_pickled_weights_are_unreadable(tmp_path):
    folder = write_diffusers_folder(tmp_path / "flux", "flux")
    (folder / "text_encoder" / "model.safetensors").unlink()
    write_text(folder / "text_encoder" / "pytorch_model.bin", "pickle")
    model = _only(tmp_path)
    assert model.status == UNREADABLE
    assert model.problems == ("text_encoder: pickled weights, convert to safetensors",)


def test_truncated_weights_are_unreadable(tmp_path):
    folder = write_diffusers_folder(tmp_path / "flux", "flux")
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])
    model = _only(tmp_path)
    assert model.status == UNREADABLE
    assert model.problems[0].startswith("transformer/diffusion_pytorch_model.safetensors: truncated:")


def test_sharded_weights_need_every_shard(tmp_path):
    folder = write_diffusers_folder(tmp_path / "flux", "flux")
    t = folder / "transformer"
    (t / "diffusion_pytorch_model.safetensors").unlink()
    write_model(t / "diffusion_pytorch_model-00001-of-00002.safetensors", {"a": (1,)})
    write_json(t / "diffusion_pytorch_model.safetensors.index.json", {"weight_map": {
        "a": "diffusion_pytorch_model-00001-of-00002.safetensors",
        "b": "diffusion_pytorch_model-00002-of-00002.safetensors",
    }})
    model = _only(tmp_path)
    assert model.problems == (f"missing {t / 'diffusion_pytorch_model-00002-of-00002.safetensors'}",)
    write_model(t / "diffusion_pytorch_model-00002-of-00002.safetensors", {"b": (1,)})
    assert _only(tmp_path).ready


def test_easel_json_names_and_marks_demo_models(tmp_path):
    folder = write_diffusers_folder(tmp_path / "demo" / "shapes-flux", "flux")
    write_json(folder / "easel.json", {"name": "Shapes (FLUX)", "label": "demo (random weights)", "demo": True})
    model = _only(tmp_path)
    assert (model.name, model.demo, model.title) == ("Shapes (FLUX)", True, "Shapes (FLUX) [demo (random weights)]")


def test_easel_json_variant_wins_when_it_fits_the_family(tmp_path):
    folder = write_diffusers_folder(tmp_path / "shapes-sd3", "sd3", medium=True)
    write_json(folder / "easel.json", {"name": "Shapes (SD3)", "demo": True, "variant": "sd3.5-large"})
    model = _only(tmp_path)
    assert (model.variant, model.label) == ("sd3.5-large", "demo")
    write_json(folder / "easel.json", {"variant": "flux-dev"})
    assert _only(tmp_path).variant == "sd3.5-medium"


def test_folders_are_found_three_levels_deep_but_not_four(tmp_path):
    write_diffusers_folder(tmp_path / "a" / "b" / "three", "flux")
    write_diffusers_folder(tmp_path / "a" / "b" / "c" / "four", "flux")
    assert [m.name for m in scan_models([tmp_path]).models] == ["three"]


def test_weights_inside_a_diffusers_folder_are_not_single_file_models(tmp_path):
    # ComfyUI users sometimes drop a diffusers folder into diffusion_models/.
    write_diffusers_folder(tmp_path / "diffusion_models" / "FLUX.1-dev", "flux", dev=True)
    scan = scan_models([tmp_path])
    assert [(m.name, m.format) for m in scan.models] == [("FLUX.1-dev", "diffusers")]
    assert scan.files == []


def test_unsupported_pipeline_in_a_models_root_says_why(tmp_path):
    write_json(tmp_path / "sdxl" / "model_index.json", {"_class_name": "StableDiffusionXLPipeline"})
    model = _only(tmp_path)
    assert model.status == UNREADABLE
    assert model.problems == ("StableDiffusionXLPipeline is not a FLUX.1 or SD3.5 text-to-image pipeline",)


def test_broken_model_index_is_unreadable(tmp_path):
    write_text(tmp_path / "flux" / "model_index.json", '{"_class_name": "FluxPipeline",\n  oops}')
    model = _only(tmp_path)
    assert model.status == UNREADABLE and "invalid JSON at line 2" in model.problems[0]


def _cache_repo(hub, org, name, family="flux", **kw):
    repo = hub / f"models--{org}--{name}"
    snapshot = write_diffusers_folder(repo / "snapshots" / "0123abcd", family, **kw)
    write_text(repo / "refs" / "main", "0123abcd")
    return snapshot


def test_hf_cache_snapshots_are_named_org_slash_name(tmp_path):
    hub = tmp_path / "hf" / "hub"
    snapshot = _cache_repo(hub, "black-forest-labs", "FLUX.1-schnell")
    _cache_repo(hub, "stabilityai", "stable-diffusion-3.5-large-turbo", "sd3")
    write_json(hub / "models--stabilityai--sdxl-turbo" / "snapshots" / "ff" / "model_index.json",
               {"_class_name": "StableDiffusionXLPipeline"})
    write_json(hub / "models--google--t5-v1_1-xxl" / "snapshots" / "ee" / "config.json", {})
    scan = scan_models([], hf_cache=tmp_path / "hf")
    assert [(m.name, m.variant, m.status) for m in scan.models] == [
        ("black-forest-labs/FLUX.1-schnell", "flux-schnell", READY),
        ("stabilityai/stable-diffusion-3.5-large-turbo", "sd3.5-large-turbo", READY),
    ]
    assert scan.by_name("black-forest-labs/flux.1-schnell").path == snapshot
    # The hub folder itself works as well as HF_HOME; an absent cache is simply empty.
    assert len(scan_models([], hf_cache=hub).models) == 2
    assert scan_models([], hf_cache=tmp_path / "no-cache") == scan_models([])


def test_hf_cache_snapshot_with_a_file_still_downloading_is_missing(tmp_path):
    snapshot = _cache_repo(tmp_path / "hub", "black-forest-labs", "FLUX.1-dev", dev=True)
    weights = snapshot / "transformer" / "diffusion_pytorch_model.safetensors"
    blob = tmp_path / "hub" / "blobs" / "abc.incomplete"
    blob.parent.mkdir(parents=True)
    weights.unlink()
    weights.symlink_to(blob)  # what the cache holds before the blob is complete
    [model] = scan_models([], hf_cache=tmp_path).models
    assert model.status == MISSING and model.problems == (f"missing {weights}",)


def test_model_index_lists_are_read_not_guessed(tmp_path):
    folder = write_diffusers_folder(tmp_path / "flux", "flux")
    index = json.loads((folder / "model_index.json").read_text())
    index["image_encoder"] = ["transformers", "CLIPVisionModelWithProjection"]
    write_json(folder / "model_index.json", index)
    assert _only(tmp_path).problems == (f"missing {folder / 'image_encoder'}/ (CLIPVisionModelWithProjection)",)


def test_a_name_clash_is_won_by_the_first_root(tmp_path):
    write_diffusers_folder(tmp_path / "a" / "flux1-dev", "flux", dev=True)
    write_model(tmp_path / "b" / "diffusion_models" / "flux1-dev.safetensors", flux_bfl_keys(dev=True))
    scan = scan_models([tmp_path / "a", tmp_path / "b"])
    assert scan.by_name("flux1-dev").format == "diffusers"
    assert scan.by_name("flux1-dev (2)").format == "single-file"
