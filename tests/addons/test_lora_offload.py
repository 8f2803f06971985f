"""A LoRA fused into a transformer whose weights accelerate streams in layer by layer (sequential offload:
the parameters are empty meta tensors between calls) acts exactly as on a model held whole, and is
taken out again exactly."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from accelerate import cpu_offload
from diffusers import FluxTransformer2DModel
from safetensors.torch import save_file

from app.addons.lora import FusedState, ResolvedLora, _fuse, _restore


def random_lora(transformer, path):
    g = torch.Generator().manual_seed(0)
    tensors = {}
    for name, module in transformer.named_modules():
        if name.endswith(("attn.to_q", "attn.to_v", "ff.net.2")):
            tensors[f"transformer.{name}.lora_A.weight"] = torch.randn(4, module.in_features, generator=g)
            tensors[f"transformer.{name}.lora_B.weight"] = torch.randn(module.out_features, 4, generator=g)
    save_file(tensors, str(path))


def forward(transformer):
    g = torch.Generator().manual_seed(1)
    cfg = transformer.config
    tokens, text = 16, 4
    with torch.no_grad():
        return transformer(
            hidden_states=torch.randn(1, tokens, cfg.in_channels, generator=g),
            encoder_hidden_states=torch.randn(1, text, cfg.joint_attention_dim, generator=g),
            pooled_projections=torch.randn(1, cfg.pooled_projection_dim, generator=g),
            timestep=torch.tensor([0.5]), img_ids=torch.zeros(tokens, 3), txt_ids=torch.zeros(text, 3),
            guidance=None, return_dict=False)[0]


@pytest.fixture()
def transformers(demo_models_dir):
    folder = str(demo_models_dir / "demo" / "easel-demo-flux" / "transformer")
    held = FluxTransformer2DModel.from_pretrained(folder).eval()
    streamed = FluxTransformer2DModel.from_pretrained(folder).eval()
    cpu_offload(streamed, execution_device=torch.device("cpu"))
    assert streamed.transformer_blocks[0].attn.to_q.weight.device.type == "meta"
    return held, streamed


def test_a_lora_under_sequential_offload_acts_as_on_a_held_model_and_comes_out_exactly(transformers, tmp_path):
    held, streamed = transformers
    lora_file = tmp_path / "l.safetensors"
    random_lora(held, lora_file)
    base = forward(streamed)
    assert torch.equal(base, forward(held))
    lora = ResolvedLora("l", lora_file, 1.0, 1.0, True, 0)
    entry = SimpleNamespace(family="flux", variant="flux-schnell")
    states = {}
    for name, model in (("held", held), ("streamed", streamed)):
        states[name] = FusedState()
        assert _fuse(lora, {"transformer": model}, states[name], "flux", entry) == []
    fused = forward(streamed)
    assert (fused - base).abs().mean() > 1e-3, "the LoRA did not reach the offloaded weights"
    assert torch.allclose(fused, forward(held), atol=1e-5)
    _restore({"transformer": streamed}, states["streamed"])
    assert torch.equal(forward(streamed), base)


def control_lora(transformer, path):
    """A FLUX.1 Canny/Depth LoRA in BFL names: img_in reads 128 channels (image + control latents), q/k norms."""
    g = torch.Generator().manual_seed(2)
    inner = transformer.x_embedder.out_features
    head = transformer.config.attention_head_dim
    save_file({"img_in.lora_A.weight": torch.randn(4, 128, generator=g),
               "img_in.lora_B.weight": torch.randn(inner, 4, generator=g),
               "double_blocks.0.img_attn.norm.key_norm.scale": 1 + torch.randn(head, generator=g)}, str(path))


def test_a_control_lora_under_sequential_offload_widens_the_input_and_comes_out_exactly(transformers, tmp_path):
    from app.addons.lora import _fit_input_width

    held, streamed = transformers
    lora_file = tmp_path / "canny-lora.safetensors"
    control_lora(held, lora_file)
    base = forward(streamed)
    lora = ResolvedLora("canny-lora", lora_file, 1.0, 0.0, False, 0, control=True)
    entry = SimpleNamespace(family="flux", variant="flux-schnell")
    states = {}
    for name, model, placement in (("held", held, "cpu"), ("streamed", streamed, "sequential_offload")):
        loaded = SimpleNamespace(base_pipeline=SimpleNamespace(transformer=model),
                                 plan=SimpleNamespace(placement=placement), device=SimpleNamespace(torch_device="cpu"))
        states[name] = (loaded, FusedState())
        _fit_input_width(loaded, states[name][1], widened=True)
        assert model.config.in_channels == 128
        assert _fuse(lora, {"transformer": model}, states[name][1], "flux", entry) == []
    widened = forward(streamed)
    assert widened.shape[-1] == 64 and torch.allclose(widened, forward(held), atol=1e-5)
    loaded, state = states["streamed"]
    _restore({"transformer": streamed}, state)
    _fit_input_width(loaded, state, widened=False)
    assert streamed.config.in_channels == 64 and torch.equal(forward(streamed), base)
