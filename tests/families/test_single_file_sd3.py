"""SD3.5 from single files and from an all-in-one checkpoint: the loaded models compute what the originals do."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from diffusers import StableDiffusion3Pipeline
from fixtures_single_file import save, sd3_inputs, tiny_vae, vae_to_ldm, write_sd3, write_sd3_checkpoint

from app.families.safetensors_parts import index_file
from app.families.single_file import load_single_file_components
from app.families.tokenizer_files import load_clip_tokenizer


def _load(tiny):
    return load_single_file_components(tiny.entry, torch.float32, models_root=tiny.root,
                                       hf_cache=tiny.root / "no-cache")


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    """SD3.5-medium-like: dual attention in layer 0, RMS qk-norm; CLIP-L saved without its projection."""
    tiny = write_sd3(tmp_path_factory.mktemp("sd3") / "models", clip_l_projection=False)
    return tiny, _load(tiny)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    tiny = write_sd3_checkpoint(tmp_path_factory.mktemp("sd3-aio") / "models")
    return tiny, _load(tiny)


def _same_transformer(loaded, original):
    with torch.no_grad():
        expected = original(**sd3_inputs(original)).sample
        actual = loaded(**sd3_inputs(loaded)).sample
    assert expected.std() > 0.01
    torch.testing.assert_close(actual, expected)


def _clip_ids(pad_token=None):
    return load_clip_tokenizer(pad_token)(["a photo of a cat"], padding="max_length", max_length=77,
                                          return_tensors="pt").input_ids


def _run_pipeline(components):
    pipe = StableDiffusion3Pipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe("a photo of a cat", negative_prompt="blurry", height=64, width=64, num_inference_steps=2,
                guidance_scale=4.5, max_sequence_length=16, generator=torch.Generator().manual_seed(0)).images[0]


def test_components_are_the_sd3_pipeline_keywords(medium):
    _, components = medium
    assert set(components) == {"transformer", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2",
                               "text_encoder_3", "tokenizer_3", "scheduler"}
    assert components["tokenizer"].pad_token == "<|endoftext|>"
    assert components["tokenizer_2"].pad_token == "!"
    assert components["scheduler"].config.shift == 3.0


def test_transformer_with_dual_attention_and_qk_norm(medium):
    tiny, components = medium
    config = components["transformer"].config
    assert (config.num_layers, config.num_attention_heads, config.attention_head_dim) == (2, 4, 8)
    assert (tuple(config.dual_attention_layers), config.qk_norm, config.pos_embed_max_size) == ((0,), "rms_norm", 16)
    assert (config.joint_attention_dim, config.caption_projection_dim, config.pooled_projection_dim) == (64, 32, 64)
    _same_transformer(components["transformer"], tiny.originals["transformer"])


def test_transformer_without_qk_norm_uses_the_released_head_size(tmp_path):
    tiny = write_sd3(tmp_path / "models", dual_attention=False, qk_norm=False, with_t5=False)
    components = _load(tiny)
    config = components["transformer"].config
    assert (config.attention_head_dim, config.num_attention_heads, config.qk_norm) == (64, 1, None)
    assert tuple(config.dual_attention_layers) == ()
    _same_transformer(components["transformer"], tiny.originals["transformer"])
    assert components["text_encoder_3"] is None and components["tokenizer_3"] is None
    assert _run_pipeline(components).size == (64, 64)


def test_clip_towers_match_and_a_missing_projection_is_identity(medium):
    tiny, components = medium
    ids, ids_g = _clip_ids(), _clip_ids("!")
    with torch.no_grad():
        clip_l = components["text_encoder"](ids)
        original_l = tiny.originals["clip_l"]
        torch.testing.assert_close(clip_l.last_hidden_state, original_l(ids).last_hidden_state)
        # the file had no text_projection: the pooled output passes through unprojected
        torch.testing.assert_close(clip_l.text_embeds, original_l.text_model(ids).pooler_output)
        clip_g, original_g = components["text_encoder_2"](ids_g), tiny.originals["clip_g"](ids_g)
        torch.testing.assert_close(clip_g.last_hidden_state, original_g.last_hidden_state)
        torch.testing.assert_close(clip_g.text_embeds, original_g.text_embeds)
    assert components["text_encoder_2"].config.hidden_act == "gelu"
    assert components["text_encoder"].config.hidden_act == "quick_gelu"


def test_pipeline_with_t5_makes_an_image_of_the_requested_size(medium):
    _, components = medium
    image = _run_pipeline(components)
    assert image.size == (64, 64)
    assert any(low < high for low, high in image.getextrema())


def test_all_in_one_checkpoint_header_names_every_part(checkpoint):
    tiny, _ = checkpoint
    index = index_file(tiny.entry.parts["checkpoint"])
    assert {part: source.prefix for part, source in index.embedded.items()} == {
        "transformer": "model.diffusion_model.",
        "clip_l": "text_encoders.clip_l.transformer.",
        "clip_g": "text_encoders.clip_g.transformer.",
        "t5xxl": "text_encoders.t5xxl.transformer.",
        "vae": "first_stage_model.",
    }
    assert index.unprefixed is None


def test_all_in_one_checkpoint_is_split_into_its_parts(checkpoint):
    tiny, components = checkpoint
    _same_transformer(components["transformer"], tiny.originals["transformer"])
    ids = _clip_ids()
    t5_ids = components["tokenizer_3"](["a tiny blue dog"], return_tensors="pt").input_ids
    latents = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for name, part in (("text_encoder", "clip_l"), ("text_encoder_2", "clip_g")):
            torch.testing.assert_close(components[name](ids).text_embeds, tiny.originals[part](ids).text_embeds)
        torch.testing.assert_close(components["text_encoder_3"](t5_ids).last_hidden_state,
                                   tiny.originals["t5xxl"](t5_ids).last_hidden_state)
        torch.testing.assert_close(components["vae"].decode(latents).sample,
                                   tiny.originals["vae"].decode(latents).sample)
    assert components["vae"].config.scaling_factor == 1.5305
    assert _run_pipeline(components).size == (64, 64)


def test_a_vae_file_of_its_own_overrides_the_checkpoint_vae(checkpoint, tmp_path):
    tiny, _ = checkpoint
    other = tiny_vae(seed=99)
    parts = dict(tiny.entry.parts, vae=save(tmp_path / "vae" / "other.safetensors", vae_to_ldm(other)))
    entry = dataclasses.replace(tiny.entry, parts=parts)
    components = load_single_file_components(entry, torch.float32, models_root=tiny.root, hf_cache=tmp_path)
    latents = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(components["vae"].decode(latents).sample, other.decode(latents).sample)
