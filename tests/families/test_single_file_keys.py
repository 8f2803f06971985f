"""Key conversion and config rules of the single-file loader, without loading any model."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, FluxTransformer2DModel, SD3Transformer2DModel
from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

from app.families import keys_flux, keys_text_encoders
from app.families.single_file import released_config


def _fake_bfl_flux(inner: int, double: int = 2, single: int = 2) -> dict[str, torch.Tensor]:
    """BFL keys with the row counts of a FLUX of width `inner` (one column each: only rows matter)."""
    g = torch.Generator().manual_seed(0)
    shapes: dict[str, int] = {}
    for name in ("img_in", "txt_in", "time_in.in_layer", "time_in.out_layer", "vector_in.in_layer",
                 "vector_in.out_layer", "guidance_in.in_layer", "guidance_in.out_layer", "final_layer.linear"):
        shapes[name] = inner
    shapes["final_layer.adaLN_modulation.1"] = 2 * inner
    for i in range(double):
        for name, rows in (("img_mod.lin", 6 * inner), ("txt_mod.lin", 6 * inner), ("img_attn.qkv", 3 * inner),
                           ("txt_attn.qkv", 3 * inner), ("img_attn.proj", inner), ("txt_attn.proj", inner),
                           ("img_mlp.0", 4 * inner), ("img_mlp.2", inner), ("txt_mlp.0", 4 * inner),
                           ("txt_mlp.2", inner)):
            shapes[f"double_blocks.{i}.{name}"] = rows
    for i in range(single):
        shapes[f"single_blocks.{i}.modulation.lin"] = 3 * inner
        shapes[f"single_blocks.{i}.linear1"] = 7 * inner
        shapes[f"single_blocks.{i}.linear2"] = inner
    tensors = {}
    for name, rows in shapes.items():
        tensors[f"{name}.weight"] = torch.randn(rows, 1, generator=g)
        tensors[f"{name}.bias"] = torch.randn(rows, generator=g)
    norms = [f"double_blocks.{i}.{s}_attn.norm.{n}_norm.scale" for i in range(double) for s in ("img", "txt")
             for n in ("query", "key")]
    norms += [f"single_blocks.{i}.norm.{n}_norm.scale" for i in range(single) for n in ("query", "key")]
    tensors.update({name: torch.randn(128, generator=g) for name in norms})
    return tensors


def test_flux_conversion_matches_diffusers_at_the_released_width():
    # diffusers' converter is right for width 3072 (and only for it); ours must agree there exactly.
    bfl = _fake_bfl_flux(3072)
    theirs = convert_flux_transformer_checkpoint_to_diffusers({f"model.diffusion_model.{k}": v for k, v in bfl.items()})
    ours = keys_flux.convert_bfl_to_diffusers({f"model.diffusion_model.{k}": v for k, v in bfl.items()})
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key


def test_flux_conversion_splits_single_blocks_at_the_file_width():
    ours = keys_flux.convert_bfl_to_diffusers(_fake_bfl_flux(48, double=1, single=1))
    rows = {name: ours[f"single_transformer_blocks.0.{name}.weight"].shape[0]
            for name in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")}
    assert rows == {"attn.to_q": 48, "attn.to_k": 48, "attn.to_v": 48, "proj_mlp": 4 * 48}


def test_flux_conversion_names_keys_it_does_not_know():
    tensors = _fake_bfl_flux(16, double=1, single=1)
    tensors["double_blocks.0.img_attn.extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"double_blocks\.0\.img_attn\.extra\.weight"):
        keys_flux.convert_bfl_to_diffusers(tensors)


@pytest.mark.parametrize(("head_dim", "axes"), [(128, (16, 56, 56)), (32, (4, 14, 14)), (64, (8, 28, 28))])
def test_default_rotary_split(head_dim, axes):
    assert keys_flux.default_axes_dims(head_dim) == axes


def test_default_rotary_split_is_even_and_complete_for_every_even_head():
    for head_dim in range(6, 514, 2):
        axes = keys_flux.default_axes_dims(head_dim)
        assert sum(axes) == head_dim and all(a > 0 and a % 2 == 0 for a in axes), head_dim
    with pytest.raises(ValueError):
        keys_flux.default_axes_dims(33)


def test_rotary_split_prefers_released_then_metadata():
    metadata = {keys_flux.AXES_DIMS_METADATA_KEY: json.dumps([4, 6, 6])}
    assert keys_flux.axes_dims_for(16, metadata) == (4, 6, 6)
    assert keys_flux.axes_dims_for(16, {}) == (2, 6, 8)
    assert keys_flux.axes_dims_for(128, {keys_flux.AXES_DIMS_METADATA_KEY: "[2, 2, 124]"}) == (16, 56, 56)
    with pytest.raises(ValueError, match="summing to the head dim 16"):
        keys_flux.axes_dims_for(16, {keys_flux.AXES_DIMS_METADATA_KEY: "[4, 4, 4]"})


def test_clip_heads_rule():
    def shapes(hidden):
        return {"text_model.embeddings.token_embedding.weight": torch.empty(10, hidden),
                "text_model.embeddings.position_embedding.weight": torch.empty(77, hidden),
                "text_model.encoder.layers.0.mlp.fc1.weight": torch.empty(4 * hidden, hidden)}

    released = released_config("sd3.5-large", "text_encoder")
    heads = {h: keys_text_encoders.infer_clip_config(shapes(h), released, {})["num_attention_heads"]
             for h in (768, 1280, 32, 256)}
    assert heads == {768: 12, 1280: 20, 32: 1, 256: 4}
    with_meta = keys_text_encoders.infer_clip_config(shapes(256), released, {"easel.num_attention_heads": "8"})
    assert with_meta["num_attention_heads"] == 8


def test_released_schedulers_and_guidance():
    assert released_config("flux-dev", "transformer")["guidance_embeds"] is True
    assert released_config("flux-schnell", "transformer")["guidance_embeds"] is False
    dev, schnell = released_config("flux-dev", "scheduler"), released_config("flux-schnell", "scheduler")
    assert (dev["shift"], dev["use_dynamic_shifting"], dev["base_shift"], dev["max_shift"]) == (3.0, True, 0.5, 1.15)
    assert (schnell["shift"], schnell["use_dynamic_shifting"]) == (1.0, False)
    for variant in ("sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium"):
        assert released_config(variant, "scheduler")["shift"] == 3.0
        vae = released_config(variant, "vae")
        assert (vae["scaling_factor"], vae["shift_factor"], vae["use_quant_conv"]) == (1.5305, 0.0609, False)
    flux_vae = released_config("flux-schnell", "vae")
    assert (flux_vae["scaling_factor"], flux_vae["shift_factor"], flux_vae["latent_channels"]) == (0.3611, 0.1159, 16)
    assert released_config("sd3.5-medium", "transformer")["dual_attention_layers"] == list(range(13))


def _count(make) -> int:
    with init_empty_weights(include_buffers=True):
        model = make()
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("variant", "component", "build", "params"), [
    ("flux-dev", "transformer", lambda c: FluxTransformer2DModel.from_config(c), 11_901_408_320),
    ("flux-dev", "vae", lambda c: AutoencoderKL.from_config(c), 83_819_683),
    ("flux-dev", "text_encoder", lambda c: CLIPTextModel(CLIPTextConfig.from_dict(c)), 123_060_480),
    ("flux-dev", "text_encoder_2", lambda c: T5EncoderModel(T5Config.from_dict(c)), 4_762_310_656),
    ("sd3.5-large", "transformer", lambda c: SD3Transformer2DModel.from_config(c), 8_056_627_520),
    ("sd3.5-medium", "transformer", lambda c: SD3Transformer2DModel.from_config(c), 2_243_171_520),
    ("sd3.5-large", "text_encoder", lambda c: CLIPTextModelWithProjection(CLIPTextConfig.from_dict(c)), 123_650_304),
    ("sd3.5-large", "text_encoder_2", lambda c: CLIPTextModelWithProjection(CLIPTextConfig.from_dict(c)), 694_659_840),
])
def test_shipped_configs_build_the_released_architectures(variant, component, build, params):
    config = {k: v for k, v in released_config(variant, component).items() if not k.startswith("_")}
    assert _count(lambda: build(config)) == params
