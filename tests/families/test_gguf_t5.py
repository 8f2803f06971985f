"""T5-XXL from a GGUF file in llama.cpp's names (city96's t5-v1_1-xxl-encoder-Q8_0.gguf): found by the catalog
as the T5 a FLUX.1 model pairs with, loaded dequantized and computing what the original encoder does, and
counted by the memory plan at its dequantized size."""

import re

import pytest
import torch
from fixtures_single_file import save_gguf, t5_comfy, write_flux

from app.catalog.scan import scan_models
from app.engine.manager import footprint_of
from app.families.single_file import load_single_file_components

LLAMA_NAMES = {
    "shared.weight": "token_embd.weight", "encoder.final_layer_norm.weight": "enc.output_norm.weight",
    **{f"layer.0.SelfAttention.{a}.weight": f"attn_{a}.weight" for a in "qkvo"},
    "layer.0.SelfAttention.relative_attention_bias.weight": "attn_rel_b.weight",
    "layer.0.layer_norm.weight": "attn_norm.weight", "layer.1.DenseReluDense.wi_0.weight": "ffn_gate.weight",
    "layer.1.DenseReluDense.wi_1.weight": "ffn_up.weight", "layer.1.DenseReluDense.wo.weight": "ffn_down.weight",
    "layer.1.layer_norm.weight": "ffn_norm.weight",
}


def llama_name(key: str) -> str:
    match = re.match(r"encoder\.block\.(\d+)\.(.+)$", key)
    return f"enc.blk.{match[1]}.{LLAMA_NAMES[match[2]]}" if match else LLAMA_NAMES[key]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf-t5") / "models"
    tiny = write_flux(root, prefix="")
    t5 = root / "text_encoders" / "t5xxl_fp16.safetensors"
    t5.unlink()
    save_gguf(root / "text_encoders" / "t5-v1_1-xxl-encoder-Q8_0.gguf",
              {llama_name(k): v for k, v in t5_comfy(tiny.originals["t5xxl"]).items()}, "Q8_0", "t5encoder")
    return root, tiny


def test_a_gguf_t5_pairs_loads_and_computes_what_the_original_does(tree):
    root, tiny = tree
    [entry] = [m for m in scan_models([root]).models if m.name == "flux-tiny"]
    assert entry.status == "ready" and entry.parts["t5xxl"].suffix == ".gguf"
    t5 = load_single_file_components(entry, torch.float32, models_root=root, hf_cache=root / "no-cache")["text_encoder_2"]
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        expected = tiny.originals["t5xxl"](ids).last_hidden_state
        actual = t5(ids).last_hidden_state
    error = ((actual - expected).norm() / expected.norm()).item()
    assert 0 < error < 0.02, error  # Q8_0's rounding, nothing more
    parameters = sum(p.numel() for p in tiny.originals["t5xxl"].parameters())
    assert footprint_of(entry).t5 == pytest.approx(2 * parameters, rel=0.01)  # dequantized to 16 bits
