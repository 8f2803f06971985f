"""Single-file models in ComfyUI and A1111 trees, paired with their encoders and VAE."""

import pytest
import torch
from tinyfiles import (
    clip_keys, flux_bfl_keys, flux_checkpoint_keys, flux_diffusers_keys, lora_keys, sd3_bfl_keys,
    sd3_checkpoint_keys, t5_keys, upscaler_keys, vae_keys, write_model,
    write_torch_pickle,
)

from app.catalog.entry import MISSING, READY
from app.catalog.scan import scan_models
from app.errors import ModelNotFound


def test_flux_transformer_is_paired_with_clip_l_t5_and_ae(comfy):
    scan = scan_models([comfy])
    [model] = scan.models
    assert (model.name, model.family, model.variant, model.status) == ("flux1-schnell", "flux", "flux-schnell", READY)
    assert model.format == "single-file" and model.key_layout == "bfl"
    assert model.parts == {
        "transformer": comfy / "diffusion_models" / "flux1-schnell.safetensors",
        "clip_l": comfy / "text_encoders" / "clip_l.safetensors",
        "t5xxl": comfy / "text_encoders" / "t5xxl_fp16.safetensors",
        "vae": comfy / "vae" / "ae.safetensors",
    }
    assert model.size_bytes == sum(p.stat().st_size for p in model.parts.values())


def test_fp16_t5_is_preferred_over_fp8(comfy):
    # Sorts before t5xxl_fp16 by name; its fp8 weights must still lose.
    write_model(comfy / "text_encoders" / "t5-xxl_e4m3fn.safetensors", t5_keys(), dtype=torch.float8_e4m3fn)
    assert scan_models([comfy]).models[0].parts["t5xxl"].name == "t5xxl_fp16.safetensors"
    (comfy / "text_encoders" / "t5xxl_fp16.safetensors").unlink()
    assert scan_models([comfy]).models[0].parts["t5xxl"].name == "t5-xxl_e4m3fn.safetensors"


def test_missing_t5_is_reported_with_the_folder_to_put_it_in(comfy):
    (comfy / "text_encoders" / "t5xxl_fp16.safetensors").unlink()
    [model] = scan_models([comfy]).models
    assert model.status == MISSING and not model.ready
    assert model.problems == (
        f"needs a T5-XXL text encoder: put t5xxl_fp16.safetensors in {comfy / 'text_encoders'}/",
    )
    assert "t5xxl" not in model.parts


def test_only_a_4_channel_vae_is_not_enough_and_the_message_says_so(comfy):
    (comfy / "vae" / "ae.safetensors").unlink()
    write_model(comfy / "vae" / "sdxl_vae.safetensors", vae_keys(4))
    [model] = scan_models([comfy]).models
    assert model.status == MISSING
    [problem] = model.problems
    assert problem.startswith(f"needs the FLUX VAE: put ae.safetensors in {comfy / 'vae'}/")
    assert "sdxl_vae.safetensors: 4-channel" in problem


def test_old_comfyui_folder_names_unet_and_clip(tmp_path):
    root = tmp_path / "models"
    write_model(root / "unet" / "flux1-dev.safetensors", flux_bfl_keys(dev=True, prefix="model.diffusion_model."))
    write_model(root / "clip" / "clip_l.safetensors", clip_keys(768, False))
    write_model(root / "clip" / "t5xxl_fp16.safetensors", t5_keys())
    write_model(root / "vae" / "ae.sft", vae_keys())
    [model] = scan_models([root]).models
    assert (model.variant, model.status) == ("flux-dev", READY)
    assert model.parts["vae"].name == "ae.sft"


def test_missing_part_message_names_the_clip_folder_when_that_is_what_the_tree_uses(tmp_path):
    root = tmp_path / "models"
    write_model(root / "unet" / "flux1-dev.safetensors", flux_bfl_keys(dev=True))
    write_model(root / "clip" / "clip_l.safetensors", clip_keys(768, False))
    write_model(root / "vae" / "ae.safetensors", vae_keys())
    [model] = scan_models([root]).models
    assert model.problems == (f"needs a T5-XXL text encoder: put t5xxl_fp16.safetensors in {root / 'clip'}/",)


def test_diffusers_keyed_single_file(tmp_path, comfy):
    write_model(comfy / "diffusion_models" / "flux-dev-diffusers.safetensors", flux_diffusers_keys(dev=True))
    model = scan_models([comfy]).by_name("flux-dev-diffusers")
    assert (model.variant, model.key_layout, model.status) == ("flux-dev", "diffusers", READY)


def test_sd3_runs_without_t5_and_says_so_in_the_label(tmp_path):
    root = tmp_path / "models"
    write_model(root / "diffusion_models" / "sd3.5_large.safetensors", sd3_bfl_keys(prefix="model.diffusion_model."))
    write_model(root / "text_encoders" / "clip_l.safetensors", clip_keys(768, False))
    write_model(root / "text_encoders" / "clip_g.safetensors", clip_keys(1280, True))
    write_model(root / "vae" / "sd3_vae.safetensors", vae_keys())
    [model] = scan_models([root]).models
    assert (model.variant, model.status, model.label) == ("sd3.5-large", READY, "no T5")
    assert model.title == "sd3.5_large [no T5]"
    assert set(model.parts) == {"transformer", "clip_l", "clip_g", "vae"}

    write_model(root / "text_encoders" / "t5xxl_fp16.safetensors", t5_keys())
    [model] = scan_models([root]).models
    assert model.label == "" and model.parts["t5xxl"].name == "t5xxl_fp16.safetensors"


def test_sd3_needs_clip_g(tmp_path):
    root = tmp_path / "models"
    write_model(root / "diffusion_models" / "sd3.5_large_turbo.safetensors", sd3_bfl_keys())
    write_model(root / "text_encoders" / "clip_l.safetensors", clip_keys(768, False))
    write_model(root / "vae" / "sd3_vae.safetensors", vae_keys())
    [model] = scan_models([root]).models
    assert model.variant == "sd3.5-large-turbo"
    assert model.problems == (f"needs a CLIP-G text encoder: put clip_g.safetensors in {root / 'text_encoders'}/",)


def test_each_family_gets_its_own_vae(comfy):
    write_model(comfy / "vae" / "sd3_vae.safetensors", vae_keys())
    write_model(comfy / "vae" / "a_vae.safetensors", vae_keys())
    write_model(comfy / "diffusion_models" / "sd3.5_medium.safetensors", sd3_bfl_keys(medium=True))
    write_model(comfy / "text_encoders" / "clip_g.safetensors", clip_keys(1280, True))
    scan = scan_models([comfy])
    assert scan.by_name("flux1-schnell").parts["vae"].name == "ae.safetensors"
    assert scan.by_name("sd3.5_medium").parts["vae"].name == "sd3_vae.safetensors"


def test_all_in_one_checkpoint_needs_nothing_else(tmp_path):
    root = tmp_path / "models"
    path = write_model(root / "checkpoints" / "sd3.5_medium_incl_clips_t5xxlfp8.safetensors", sd3_checkpoint_keys(medium=True))
    [model] = scan_models([root]).models
    assert (model.variant, model.status, model.label) == ("sd3.5-medium", READY, "")
    assert model.parts == {"checkpoint": path}
    assert model.size_bytes == path.stat().st_size


def test_all_in_one_checkpoint_borrows_what_it_lacks(tmp_path):
    root = tmp_path / "models"
    write_model(root / "checkpoints" / "sd3.5_medium_incl_clips.safetensors", sd3_checkpoint_keys(medium=True, t5=False))
    [model] = scan_models([root]).models
    assert (model.status, model.label) == (READY, "no T5")
    t5 = write_model(root / "text_encoders" / "t5xxl_fp16.safetensors", t5_keys())
    [model] = scan_models([root]).models
    assert model.parts["t5xxl"] == t5 and model.label == ""


def test_flux_fp8_checkpoint(tmp_path):
    root = tmp_path / "models"
    write_model(root / "checkpoints" / "flux1-dev-fp8.safetensors", flux_checkpoint_keys(dev=True))
    [model] = scan_models([root]).models
    assert (model.family, model.variant, model.status) == ("flux", "flux-dev", READY)


def test_parts_are_found_in_another_root(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_model(a / "diffusion_models" / "flux1-schnell.safetensors", flux_bfl_keys())
    write_model(b / "text_encoders" / "clip_l.safetensors", clip_keys(768, False))
    write_model(b / "text_encoders" / "t5xxl_fp16.safetensors", t5_keys())
    write_model(b / "vae" / "ae.safetensors", vae_keys())
    [model] = scan_models([a, b]).models
    assert model.status == READY and model.parts["vae"] == b / "vae" / "ae.safetensors"


def test_same_name_in_two_roots_gets_a_suffix_and_both_can_be_picked(tmp_path, comfy):
    other = tmp_path / "other"
    write_model(other / "diffusion_models" / "flux1-schnell.safetensors", flux_bfl_keys(dev=True))
    scan = scan_models([comfy, other])
    assert [m.name for m in scan.models] == ["flux1-schnell", "flux1-schnell (2)"]
    assert scan.by_name("FLUX1-SCHNELL (2)").variant == "flux-dev"
    assert scan.by_name("flux1-schnell").path.parent.parent == comfy


def test_the_same_folder_given_twice_is_listed_once(comfy):
    scan = scan_models([comfy, comfy / ".." / "models"])
    assert [m.name for m in scan.models] == ["flux1-schnell"]
    assert len(scan.files) == 4


def test_files_lists_loras_upscalers_and_vaes(comfy):
    write_model(comfy / "loras" / "style.safetensors", lora_keys())
    write_model(comfy / "upscale_models" / "RealESRGAN_x4plus.safetensors", upscaler_keys())
    write_torch_pickle(comfy / "upscale_models" / "4x-UltraSharp.pth", upscaler_keys(), legacy=True)
    write_model(comfy / "vae" / "sdxl_vae.safetensors", vae_keys(4))
    scan = scan_models([comfy])
    assert [f.path.name for f in scan.files_of_kind("lora")] == ["style.safetensors"]
    assert scan.files_of_kind("lora")[0].family == "flux"
    assert [f.path.name for f in scan.files_of_kind("upscaler")] == ["4x-UltraSharp.pth", "RealESRGAN_x4plus.safetensors"]
    assert [f.path.name for f in scan.files_of_kind("vae")] == ["ae.safetensors"]
    assert len(scan.models) == 1


def test_a1111_tree(tmp_path):
    root = tmp_path / "stable-diffusion-webui" / "models"
    write_model(root / "Stable-diffusion" / "sd3.5_medium_incl_clips.safetensors", sd3_checkpoint_keys(medium=True))
    write_model(root / "Stable-diffusion" / "flux1-dev.safetensors", flux_bfl_keys(dev=True))
    write_model(root / "Lora" / "flux_style.safetensors", lora_keys())
    write_model(root / "ESRGAN" / "4x_esrgan.safetensors", upscaler_keys())
    write_model(root / "VAE" / "ae.safetensors", vae_keys())
    scan = scan_models([root])
    assert [(m.name, m.status) for m in scan.models] == [("sd3.5_medium_incl_clips", READY), ("flux1-dev", MISSING)]
    flux = scan.by_name("flux1-dev")
    assert flux.parts["vae"] == root / "VAE" / "ae.safetensors"
    assert f"put clip_l.safetensors in {root / 'text_encoder'}/" in flux.problems[0]
    assert [f.path.name for f in scan.files_of_kind("lora")] == ["flux_style.safetensors"]
    assert [f.path.name for f in scan.files_of_kind("upscaler")] == ["4x_esrgan.safetensors"]

    write_model(root / "text_encoder" / "clip_l.safetensors", clip_keys(768, False))
    write_model(root / "text_encoder" / "t5xxl_fp16.safetensors", t5_keys())
    assert scan_models([root]).by_name("flux1-dev").ready


def test_models_in_subfolders_are_found(comfy):
    write_model(comfy / "diffusion_models" / "flux" / "dev" / "flux1-dev.safetensors", flux_bfl_keys(dev=True))
    assert scan_models([comfy]).by_name("flux1-dev").ready


def test_ready_models_come_first_then_by_name(comfy):
    write_model(comfy / "diffusion_models" / "a-sd3.safetensors", sd3_bfl_keys())  # lacks clip_g
    write_model(comfy / "diffusion_models" / "Z-flux.safetensors", flux_bfl_keys())
    write_model(comfy / "diffusion_models" / "b-flux.safetensors", flux_bfl_keys())
    names = [m.name for m in scan_models([comfy]).models]
    assert names == ["b-flux", "flux1-schnell", "Z-flux", "a-sd3"]


def test_by_name_accepts_the_title_and_any_case(tmp_path):
    root = tmp_path / "models"
    write_model(root / "checkpoints" / "SD3.5_Medium.safetensors", sd3_checkpoint_keys(medium=True, t5=False))
    scan = scan_models([root])
    assert scan.by_name("sd3.5_medium [NO T5]").name == "SD3.5_Medium"
    assert scan.by_name("  sd3.5_medium ").name == "SD3.5_Medium"


def test_unknown_name_lists_up_to_ten_available_models(comfy):
    for i in range(12):
        write_model(comfy / "diffusion_models" / f"m{i:02d}.safetensors", flux_bfl_keys())
    with pytest.raises(ModelNotFound) as err:
        scan_models([comfy]).by_name("sdxl")
    message = str(err.value)
    assert message.startswith("no model named 'sdxl'; available: flux1-schnell, m00, m01")
    assert "m08" in message and "m09" not in message and message.endswith("and 3 more")


def test_unknown_name_in_an_empty_catalog(tmp_path):
    with pytest.raises(ModelNotFound, match="no models were found"):
        scan_models([tmp_path]).by_name("flux1-dev")


def test_files_loose_in_a_models_folder_pair_with_each_other(tmp_path):
    write_model(tmp_path / "flux1-dev.safetensors", flux_bfl_keys(dev=True))
    write_model(tmp_path / "clip_l.safetensors", clip_keys(768, False))
    write_model(tmp_path / "t5xxl_fp16.safetensors", t5_keys())
    write_model(tmp_path / "ae.safetensors", vae_keys())
    [model] = scan_models([tmp_path]).models
    assert model.status == READY and model.parts["vae"] == tmp_path / "ae.safetensors"


def test_a_flux_fill_model_is_recognised_by_its_384_input_channels(comfy):
    write_model(comfy / "diffusion_models" / "flux1-fill-dev.safetensors",
                flux_bfl_keys(dev=True) | {"img_in.weight": (3072, 384)})
    model = scan_models([comfy]).by_name("flux1-fill-dev")
    assert (model.family, model.variant) == ("flux", "flux-fill")


def test_a_flux_depth_model_is_a_control_model_not_a_generation_model(comfy):
    write_model(comfy / "diffusion_models" / "flux1-depth-dev.safetensors",
                flux_bfl_keys(dev=True) | {"img_in.weight": (3072, 128)})
    scan = scan_models([comfy])
    assert [m.name for m in scan.models] == ["flux1-schnell"]
    [control] = scan.files_of_kind("controlnet")
    assert (control.path.name, control.variant) == ("flux1-depth-dev.safetensors", "bfl-control")
    assert control.control_types == ("depth",)
