"""FLUX.1 from single files (BFL / ComfyUI layouts): the loaded models compute what the originals do."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers import FluxPipeline
from fixtures_single_file import assert_same_flux_output, write_flux, write_t5_tokenizer

from app.families.single_file import load_single_file_components
from app.families.tokenizer_files import load_clip_tokenizer


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    """flux-dev with the ComfyUI "model.diffusion_model." prefix, loaded once for the module."""
    tiny = write_flux(tmp_path_factory.mktemp("flux-dev") / "models")
    components = load_single_file_components(tiny.entry, torch.float32, models_root=tiny.root,
                                             hf_cache=tiny.root / "no-cache")
    return tiny, components


def test_components_are_the_flux_pipeline_keywords(dev):
    _, components = dev
    assert set(components) == {"transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2",
                               "scheduler"}
    assert type(components["text_encoder"]).__name__ == "CLIPTextModel"
    assert type(components["text_encoder_2"]).__name__ == "T5EncoderModel"
    assert components["scheduler"].config.use_dynamic_shifting is True  # dev's schedule


def test_transformer_widths_come_from_the_file(dev):
    tiny, components = dev
    config = components["transformer"].config
    assert (config.num_attention_heads, config.attention_head_dim, config.num_layers, config.num_single_layers) == (
        2, 32, 2, 2)
    assert (config.joint_attention_dim, config.pooled_projection_dim, config.guidance_embeds) == (32, 32, True)
    assert tuple(config.axes_dims_rope) == (4, 14, 14)
    assert_same_flux_output(components["transformer"], tiny.originals["transformer"])


def test_vae_matches_and_keeps_the_flux_latent_scaling(dev):
    tiny, components = dev
    vae, original = components["vae"], tiny.originals["vae"]
    assert (vae.config.scaling_factor, vae.config.shift_factor, vae.config.latent_channels) == (0.3611, 0.1159, 16)
    g = torch.Generator().manual_seed(0)
    latents, image = torch.randn(1, 16, 8, 8, generator=g), torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(vae.decode(latents).sample, original.decode(latents).sample)
        torch.testing.assert_close(vae.encode(image).latent_dist.mean, original.encode(image).latent_dist.mean)


def test_text_encoders_match(dev):
    tiny, components = dev
    ids = load_clip_tokenizer()(["a photo of a cat"], padding="max_length", max_length=77,
                                return_tensors="pt").input_ids
    t5_ids = components["tokenizer_2"](["a big red house"], return_tensors="pt").input_ids
    assert (t5_ids != components["tokenizer_2"].unk_token_id).all()
    with torch.no_grad():
        clip, original_clip = components["text_encoder"](ids), tiny.originals["clip_l"](ids)
        torch.testing.assert_close(clip.last_hidden_state, original_clip.last_hidden_state)
        torch.testing.assert_close(clip.pooler_output, original_clip.pooler_output)
        torch.testing.assert_close(components["text_encoder_2"](t5_ids).last_hidden_state,
                                   tiny.originals["t5xxl"](t5_ids).last_hidden_state)
    t5 = components["text_encoder_2"]
    assert t5.shared.weight is t5.encoder.embed_tokens.weight  # one embedding, as released


def test_pipeline_makes_an_image_of_the_requested_size(dev):
    _, components = dev
    pipe = FluxPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a photo of a cat", height=64, width=64, num_inference_steps=2, guidance_scale=3.5,
                 max_sequence_length=16, generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
    assert any(low < high for low, high in image.getextrema())


def test_schnell_without_prefix_and_in_bfloat16(tmp_path):
    tiny = write_flux(tmp_path / "models", guidance=False, prefix="")
    components = load_single_file_components(tiny.entry, torch.bfloat16, models_root=tiny.root,
                                             hf_cache=tmp_path / "no-cache")
    transformer = components["transformer"]
    assert transformer.config.guidance_embeds is False
    assert components["scheduler"].config.shift == 1.0
    for name in ("transformer", "vae", "text_encoder", "text_encoder_2"):
        assert {p.dtype for p in components[name].parameters()} == {torch.bfloat16}, name
    # the same model with its weights rounded to bfloat16, as the file was cast
    rounded = copy.deepcopy(tiny.originals["transformer"]).to(torch.bfloat16).float()
    assert_same_flux_output(transformer.float(), rounded)


def test_rotary_split_from_the_file_metadata(tmp_path):
    # head 16 would split (2, 6, 8) by rule; the file says (4, 6, 6), and only that reproduces the model
    tiny = write_flux(tmp_path / "models", head_dim=16, heads=4, axes=(4, 6, 6),
                      metadata={"easel.axes_dims_rope": [4, 6, 6]})
    components = load_single_file_components(tiny.entry, torch.float32, models_root=tiny.root,
                                             hf_cache=tmp_path / "no-cache")
    assert tuple(components["transformer"].config.axes_dims_rope) == (4, 6, 6)
    assert_same_flux_output(components["transformer"], tiny.originals["transformer"])


def test_diffusers_layout_transformer_file(tmp_path):
    tiny = write_flux(tmp_path / "models", layout="diffusers")
    components = load_single_file_components(tiny.entry, torch.float32, models_root=tiny.root,
                                             hf_cache=tmp_path / "no-cache")
    assert_same_flux_output(components["transformer"], tiny.originals["transformer"])


def test_t5_tokenizer_is_found_in_the_hugging_face_cache(tmp_path):
    tiny = write_flux(tmp_path / "models", tokenizer=False)
    hub = tmp_path / "hf-home" / "hub"
    write_t5_tokenizer(hub / "models--black-forest-labs--FLUX.1-schnell" / "snapshots" / "0123abcd" / "tokenizer_2")
    components = load_single_file_components(tiny.entry, torch.float32, models_root=tiny.root,
                                             hf_cache=tmp_path / "hf-home")
    assert components["tokenizer_2"]("a photo").input_ids[-1] == components["tokenizer_2"].eos_token_id
