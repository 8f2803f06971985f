"""Every folder of a models tree lists what Easel cannot read, with the reason, and `python -m app models`
prints it: pickled and damaged files beside LoRAs, VAEs, encoders and upscalers, and the folders of things
Easel does not use."""

import os
import pickle

import pytest
from tinyfiles import (
    Trap, lora_keys, upscaler_keys, vae_keys, write_diffusers_folder, write_model, write_text, write_torch_pickle,
)

from app.catalog.files import PICKLE_REASON
from app.catalog.scan import scan_models
from app.commands.models import list_models
from app.settings import Settings

# (folder, file) pairs in ComfyUI's and A1111's spellings of each category folder
PICKLED = [("loras", "style.pt"), ("Lora", "detail.ckpt"), ("vae", "ae.pth"), ("VAE", "old.pt"),
           ("text_encoders", "t5.bin"), ("clip", "clip_l.pt"), ("text_encoder", "clip_g.pth")]
TRUNCATED = ["loras", "vae", "text_encoders", "upscale_models", "ESRGAN"]


def _reasons(scan):
    return {str(f.path.relative_to(f.root)): f.reason for f in scan.unusable_files()}


def _truncated(path):
    write_model(path, vae_keys())
    path.write_bytes(path.read_bytes()[:-6])


def test_pickled_files_in_every_category_folder_are_listed_never_unpickled(tmp_path, comfy):
    marker = tmp_path / "unpickled"
    for folder, name in PICKLED:
        (comfy / folder).mkdir(exist_ok=True)
        (comfy / folder / name).write_bytes(pickle.dumps(Trap(marker)))
    reasons = _reasons(scan_models([comfy]))
    assert reasons == {f"{folder}/{name}": PICKLE_REASON for folder, name in PICKLED}
    assert not marker.exists()


def test_damaged_safetensors_in_every_category_folder_are_listed(comfy):
    for folder in TRUNCATED:
        _truncated(comfy / folder / "broken.safetensors")
    (comfy / "loras" / "noise.safetensors").write_bytes(os.urandom(512))
    reasons = _reasons(scan_models([comfy]))
    assert sorted(reasons) == sorted([f"{folder}/broken.safetensors" for folder in TRUNCATED]
                                     + ["loras/noise.safetensors"])
    assert all(reasons[f"{folder}/broken.safetensors"].startswith("truncated: header says") for folder in TRUNCATED)
    assert reasons["loras/noise.safetensors"].startswith("not a safetensors file")


def test_foreign_files_and_files_loose_in_a_root_are_listed(comfy):
    write_model(comfy / "vae" / "sdxl_vae.safetensors", vae_keys(4))
    write_text(comfy / "loose.ckpt")
    reasons = _reasons(scan_models([comfy]))
    assert reasons["vae/sdxl_vae.safetensors"].startswith("a 4-channel VAE (SD 1.x/XL)")
    assert reasons["loose.ckpt"] == PICKLE_REASON


def test_upscaler_pickles_are_usable_when_torch_loads_them_weights_only(tmp_path, comfy):
    write_torch_pickle(comfy / "upscale_models" / "4x-zip.pth", upscaler_keys())
    write_torch_pickle(comfy / "ESRGAN" / "4x-legacy.pth", upscaler_keys(), legacy=True)
    marker = tmp_path / "unpickled"
    (comfy / "upscale_models" / "evil.pth").write_bytes(pickle.dumps({"conv_first.weight": Trap(marker)}))
    scan = scan_models([comfy])
    assert [f.path.name for f in scan.files_of_kind("upscaler")] == ["4x-legacy.pth", "4x-zip.pth"]
    assert _reasons(scan)["upscale_models/evil.pth"].startswith("pickled code: it imports")
    assert not marker.exists()


def test_folders_easel_does_not_use_are_counted_when_they_hold_files(comfy):
    write_text(comfy / "embeddings" / "bad-hands.pt")
    write_text(comfy / "embeddings" / "sub" / "style.safetensors")
    write_text(comfy / "controlnet" / "put_controlnets_here")  # ComfyUI's placeholder is no model file
    scan = scan_models([comfy])
    assert scan.unused_folders == [(comfy / "embeddings", "textual inversion embeddings", 2)]
    assert scan.unusable_files() == []


@pytest.fixture
def listing(capsys, tmp_path):
    def run(root):
        settings = Settings(models_dir=root, outputs_dir=tmp_path / "out", settings_file=tmp_path / "s.json",
                            hf_cache=tmp_path / "no-hf-cache", device="cpu", demo_models=False)
        assert list_models(settings) == 0
        return capsys.readouterr().out.splitlines()

    return run


def test_the_models_command_prints_files_reasons_and_unused_folders(comfy, listing):
    write_model(comfy / "loras" / "style.safetensors", lora_keys())
    write_text(comfy / "loras" / "old.pt")
    _truncated(comfy / "vae" / "broken.safetensors")
    write_torch_pickle(comfy / "upscale_models" / "4x.pth", upscaler_keys())
    write_text(comfy / "embeddings" / "bad-hands.pt")
    lines = listing(comfy)
    assert "files: 1 LoRA, 1 VAE, 1 CLIP-L, 1 T5-XXL, 1 upscaler (1 pickled, read weights-only)" in lines
    start = lines.index("cannot use 2 files:")
    assert lines[start + 1] == f"  {comfy / 'loras' / 'old.pt'}: {PICKLE_REASON}"
    assert lines[start + 2].startswith(f"  {comfy / 'vae' / 'broken.safetensors'}: truncated: header says")
    assert f"not used by Easel: {comfy / 'embeddings'} (1 file: textual inversion embeddings)" in lines


def test_the_models_command_shows_a_custom_code_model_with_its_reason(tmp_path, listing):
    import json

    folder = write_diffusers_folder(tmp_path / "models" / "flux-custom", "flux")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "transformer": ["my_module", "MyTransformer"]}))
    lines = listing(tmp_path / "models")
    row = next(line for line in lines if line.startswith("flux-custom "))
    assert row.split()[-2:] == ["custom", "code"]
    assert ("  flux-custom: needs custom code (component transformer: my_module.MyTransformer); "
            "Easel loads only diffusers and transformers classes") in lines
    assert not any(line.startswith("  flux-custom: plan:") for line in lines)
