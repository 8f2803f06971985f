import pytest
from tinyfiles import (
    as_header, clip_keys, flux_bfl_keys, flux_checkpoint_keys, flux_diffusers_keys, lora_keys,
    sd3_bfl_keys, sd3_checkpoint_keys, sd3_diffusers_keys, sdxl_keys, t5_keys, upscaler_keys, vae_keys,
)

from app.catalog.identify import identify

CKPT = "model.diffusion_model."


@pytest.mark.parametrize(
    "keys, kind, variant, layout",
    [
        (flux_bfl_keys(dev=False), "flux-transformer", "flux-schnell", "bfl"),
        (flux_bfl_keys(dev=True), "flux-transformer", "flux-dev", "bfl"),
        (flux_bfl_keys(dev=False, prefix=CKPT), "flux-transformer", "flux-schnell", "bfl"),
        (flux_bfl_keys(dev=True, prefix=CKPT), "flux-transformer", "flux-dev", "bfl"),
        (flux_diffusers_keys(dev=False), "flux-transformer", "flux-schnell", "diffusers"),
        (flux_diffusers_keys(dev=True), "flux-transformer", "flux-dev", "diffusers"),
        (sd3_bfl_keys(medium=False), "sd3-transformer", "sd3.5-large", "bfl"),
        (sd3_bfl_keys(medium=True, prefix=CKPT), "sd3-transformer", "sd3.5-medium", "bfl"),
        (sd3_diffusers_keys(medium=False), "sd3-transformer", "sd3.5-large", "diffusers"),
        (sd3_diffusers_keys(medium=True), "sd3-transformer", "sd3.5-medium", "diffusers"),
    ],
)
def test_transformers(keys, kind, variant, layout):
    found = identify(as_header(keys), "model")
    assert (found.kind, found.variant, found.key_layout) == (kind, variant, layout)
    assert found.family == kind.split("-")[0]
    assert found.problem is None


def test_large_turbo_is_told_by_name_only():
    keys = as_header(sd3_bfl_keys(prefix=CKPT))
    assert identify(keys, "sd3.5_large_turbo").variant == "sd3.5-large-turbo"
    assert identify(keys, "sd3.5_large").variant == "sd3.5-large"
    # A medium model stays medium whatever its name says.
    assert identify(as_header(sd3_bfl_keys(medium=True)), "medium-Turbo").variant == "sd3.5-medium"


def test_all_in_one_checkpoints_list_the_parts_inside():
    sd3 = identify(as_header(sd3_checkpoint_keys(medium=True, t5=False)), "sd3.5_medium_incl_clips")
    assert (sd3.kind, sd3.variant) == ("sd3-checkpoint", "sd3.5-medium")
    assert sd3.contains == {"clip_l", "clip_g", "vae"}
    flux = identify(as_header(flux_checkpoint_keys(dev=True)), "flux1-dev-fp8")
    assert (flux.kind, flux.variant) == ("flux-checkpoint", "flux-dev")
    assert flux.contains == {"clip_l", "t5xxl", "vae"}


@pytest.mark.parametrize(
    "keys, kind",
    [
        (clip_keys(768, projection=False), "clip_l"),
        (clip_keys(768, projection=True), "clip_l"),  # real width wins over the projection
        (clip_keys(1280, projection=False), "clip_g"),
        (clip_keys(1280, projection=True), "clip_g"),
        (clip_keys(32, projection=False), "clip_l"),  # tiny model: projection decides
        (clip_keys(32, projection=True), "clip_g"),
        (clip_keys(768, projection=False, prefix=""), "clip_l"),  # prefix absent
        (t5_keys(), "t5xxl"),
        (t5_keys(4096), "t5xxl"),
        ({k: v for k, v in t5_keys().items() if "shared" not in k}, "t5xxl"),
        (vae_keys(16), "vae"),
        (vae_keys(4), "vae-4ch"),
        (lora_keys(), "lora"),
        ({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": (1,),
          "lora_unet_double_blocks_0_img_attn_qkv.alpha": ()}, "lora"),
        (upscaler_keys(), "upscaler"),
        ({"model.0.weight": (1,), "model.1.sub.0.RDB1.conv1.0.weight": (1,)}, "upscaler"),
    ],
)
def test_parts_and_extras(keys, kind):
    assert identify(as_header(keys)).kind == kind


def test_lora_family_is_guessed_from_the_blocks_it_patches():
    assert identify(as_header(lora_keys())).family == "flux"
    sd3_lora = {"lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight": (1,)}
    assert identify(as_header(sd3_lora)).family == "sd3"


def test_files_easel_cannot_use_say_why():
    assert "16-channel" in identify(as_header(vae_keys(4))).problem
    assert "T5-XXL" in identify(as_header(t5_keys(768))).problem
    assert identify(as_header(t5_keys(768))).kind == "unknown"
    assert "CLIP-H" in identify(as_header(clip_keys(1024, projection=True))).problem
    sdxl = identify(as_header(sdxl_keys()))
    assert sdxl.kind == "unknown" and "Stable Diffusion 1.x/2.x/XL" in sdxl.problem
    assert identify({}).problem == "the file holds no tensors"


def test_flux_fill_is_recognised_by_its_input_channels_and_depth_is_a_control_model():
    keys = flux_bfl_keys(dev=True) | {"img_in.weight": (3072, 384)}
    found = identify(as_header(keys))
    assert (found.kind, found.variant, found.problem) == ("flux-transformer", "flux-fill", None)
    depth = identify(as_header(flux_bfl_keys(dev=True) | {"img_in.weight": (3072, 128)}), "flux1-depth-dev")
    assert (depth.kind, depth.family, depth.variant) == ("controlnet", "flux", "bfl-control")
    assert depth.control_types == ("depth",)
    other = identify(as_header(flux_bfl_keys(dev=True) | {"img_in.weight": (3072, 96)}))
    assert other.kind == "flux-transformer" and "96 input channels" in other.problem
    real_dev = identify(as_header(flux_bfl_keys(dev=True) | {"img_in.weight": (3072, 64)}))
    assert real_dev.problem is None and real_dev.variant == "flux-dev"
