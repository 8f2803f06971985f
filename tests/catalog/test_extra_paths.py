"""Extra folders from ComfyUI's extra_model_paths.yaml, including A1111 installs."""

from tinyfiles import (
    clip_keys, flux_bfl_keys, lora_keys, sd3_checkpoint_keys, t5_keys, upscaler_keys, vae_keys, write_model,
    write_text,
)

from app.catalog.entry import READY
from app.catalog.extra_paths import read_extra_paths
from app.catalog.layout import CONTROLNET, LORAS, MODELS, TEXT_ENCODERS, UPSCALERS, VAE
from app.catalog.scan import scan_models

COMFY_YAML = """\
comfyui:
    base_path: ../ComfyUI/
    is_default: true
    checkpoints: models/checkpoints/
    clip: models/clip/
    diffusion_models: |
                 models/diffusion_models
                 models/unet
    vae: models/vae/
    loras:
      - models/loras
    embeddings: models/embeddings/
    controlnet: models/controlnet/
"""


def test_comfyui_section_with_multi_line_and_list_values(tmp_path):
    config = write_text(tmp_path / "easel" / "extra_model_paths.yaml", COMFY_YAML)
    base = tmp_path / "ComfyUI"
    base.mkdir()
    extra = read_extra_paths(config)
    assert extra.errors == []
    assert extra.roots == []
    assert extra.folders == [
        (MODELS, base / "models/checkpoints"),
        (TEXT_ENCODERS, base / "models/clip"),
        (MODELS, base / "models/diffusion_models"),
        (MODELS, base / "models/unet"),
        (VAE, base / "models/vae"),
        (LORAS, base / "models/loras"),
        (CONTROLNET, base / "models/controlnet"),
    ]


def test_models_in_extra_folders_are_scanned_and_paired(tmp_path):
    comfy = tmp_path / "ComfyUI" / "models"
    write_model(comfy / "unet" / "flux1-dev.safetensors", flux_bfl_keys(dev=True))
    write_model(comfy / "clip" / "clip_l.safetensors", clip_keys(768, False))
    write_model(comfy / "clip" / "t5xxl_fp16.safetensors", t5_keys())
    write_model(comfy / "vae" / "ae.safetensors", vae_keys())
    write_model(comfy / "loras" / "style.safetensors", lora_keys())
    config = write_text(tmp_path / "easel" / "extra_model_paths.yaml", COMFY_YAML)
    scan = scan_models([tmp_path / "easel" / "models"], extra=read_extra_paths(config))
    model = scan.by_name("flux1-dev")
    assert (model.status, model.parts["t5xxl"]) == (READY, comfy / "clip" / "t5xxl_fp16.safetensors")
    assert [f.path.name for f in scan.files_of_kind("lora")] == ["style.safetensors"]


def test_a1111_install_becomes_a_root(tmp_path):
    webui = tmp_path / "stable-diffusion-webui"
    write_model(webui / "models" / "Stable-diffusion" / "sd3.5_medium.safetensors", sd3_checkpoint_keys(medium=True))
    write_model(webui / "models" / "ESRGAN" / "4x.safetensors", upscaler_keys())
    config = write_text(tmp_path / "extra_model_paths.yaml", f"""\
a111:
    base_path: {webui}
    checkpoints: models/Stable-diffusion
    upscale_models: |
        models/ESRGAN
        models/RealESRGAN
""")
    extra = read_extra_paths(config)
    assert extra.roots == [webui / "models"]
    assert (UPSCALERS, webui / "models" / "RealESRGAN") in extra.folders
    scan = scan_models([], extra=extra)
    assert [(m.name, m.status) for m in scan.models] == [("sd3.5_medium", READY)]
    assert [f.path.name for f in scan.files_of_kind("upscaler")] == ["4x.safetensors"]
    # ComfyUI's template names folders many installs lack (RealESRGAN/): no warning for those.
    assert scan.errors == []


def test_home_and_variables_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MODELS_DISK", str(tmp_path / "disk"))
    (tmp_path / "disk").mkdir()
    config = write_text(tmp_path / "extra.yaml", "mine:\n  base_path: $MODELS_DISK\n  vae: ~/vaes\n")
    assert read_extra_paths(config).folders == [(VAE, tmp_path / "vaes")]


def test_invalid_yaml_names_the_file_and_line_and_the_scan_goes_on(tmp_path, comfy):
    config = write_text(tmp_path / "extra_model_paths.yaml", "comfyui:\n    base_path: x\n  vae: [unclosed\n")
    extra = read_extra_paths(config)
    assert extra.roots == [] and extra.folders == []
    [error] = extra.errors
    assert error.startswith(f"{config}: invalid YAML at line 3")
    scan = scan_models([comfy], extra=extra)
    assert scan.errors == [error]
    assert scan.by_name("flux1-schnell").ready


def test_sections_that_cannot_be_used_are_reported(tmp_path):
    config = write_text(tmp_path / "extra.yaml", "gone:\n  base_path: /no/such/dir\n  vae: vae\nodd: 3\nempty:\n")
    extra = read_extra_paths(config)
    assert extra.errors == [
        f"{config}: section 'gone': base_path /no/such/dir does not exist",
        f"{config}: section 'odd' should hold base_path and folder keys",
    ]
    assert read_extra_paths(tmp_path / "absent.yaml").errors[0].startswith(f"{tmp_path / 'absent.yaml'}: cannot read")


def test_scan_reads_the_config_file_when_it_exists(tmp_path, comfy):
    other = tmp_path / "other"
    write_model(other / "vae" / "flux_vae.safetensors", vae_keys())
    config = tmp_path / "extra_model_paths.yaml"
    assert scan_models([comfy], extra_paths_file=config).errors == []  # no file: nothing to add
    write_text(config, f"other:\n  base_path: {other}\n  vae: vae\n")
    scan = scan_models([comfy], extra_paths_file=config)
    assert [f.path.name for f in scan.files_of_kind("vae")] == ["ae.safetensors", "flux_vae.safetensors"]
