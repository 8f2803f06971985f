"""GGUF transformers as city96 quantizes FLUX.1 (BFL keys, Q8_0 / Q4_0 weight matrices, the rest F32): found by
the catalog with their quant type, loaded offline with their weights still quantized, and computing what the
full-precision model computes to within the quantization's error."""

from __future__ import annotations

import shutil

import pytest
import torch
from fixtures_single_file import flux_inputs, flux_to_bfl, save_gguf, write_flux

from app.catalog.scan import scan_models
from app.families.single_file import load_single_file_components

QUANT_ERROR = {"Q8_0": 0.02, "Q4_0": 0.2}  # relative error of the transformer's output


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A ComfyUI tree whose transformer is in GGUF files (each quant type), beside the usual encoders and VAE."""
    root = tmp_path_factory.mktemp("gguf") / "models"
    tiny = write_flux(root, prefix="")
    original = tiny.originals["transformer"]
    bfl = flux_to_bfl(original)
    for quant in QUANT_ERROR:
        save_gguf(root / "diffusion_models" / f"flux-tiny-{quant}.gguf", bfl, quant)
    (root / "diffusion_models" / "flux-tiny.safetensors").unlink()  # the GGUF files are the models
    shutil.rmtree(root / "unused", ignore_errors=True)
    return root, tiny


def entries(root):
    return {m.name: m for m in scan_models([root]).models}


@pytest.mark.parametrize("quant", list(QUANT_ERROR))
def test_a_gguf_transformer_is_a_model_with_its_quant_type_and_true_size(tree, quant):
    root, _ = tree
    model = entries(root)[f"flux-tiny-{quant}"]
    assert (model.family, model.variant, model.status, model.label) == ("flux", "flux-dev", "ready", f"GGUF {quant}")
    assert model.parts["transformer"].suffix == ".gguf"
    assert model.size_bytes == sum(p.stat().st_size for p in model.parts.values())


@pytest.mark.parametrize("quant", list(QUANT_ERROR))
def test_it_loads_offline_stays_quantized_and_computes_what_the_original_does(tree, quant):
    from diffusers.quantizers.gguf.utils import GGUFParameter

    root, tiny = tree
    entry = entries(root)[f"flux-tiny-{quant}"]
    transformer = load_single_file_components(entry, torch.float32, models_root=root,
                                              hf_cache=root / "no-cache")["transformer"]
    weight = transformer.transformer_blocks[0].attn.to_q.weight
    assert isinstance(weight, GGUFParameter) and weight.quant_type.name == quant
    stored = weight.numel() * weight.element_size()  # bytes as held in memory
    assert stored < transformer.transformer_blocks[0].attn.to_q.out_features * \
        transformer.transformer_blocks[0].attn.to_q.in_features * (1.1 if quant == "Q8_0" else 0.6)
    original = tiny.originals["transformer"]
    with torch.no_grad():
        expected = original(**flux_inputs(original)).sample
        actual = transformer(**flux_inputs(transformer)).sample
    error = ((actual - expected).norm() / expected.norm()).item()
    print(f"{quant}: relative error {error:.4f}")
    assert 0 < error < QUANT_ERROR[quant], f"{quant}: relative error {error:.4f}"


def test_a_gguf_file_of_another_model_is_listed_with_the_reason(tmp_path):
    save_gguf(tmp_path / "diffusion_models" / "llama-3-8b-Q4_0.gguf",
              {"token_embd.weight": torch.randn(64, 32), "blk.0.attn_q.weight": torch.randn(32, 32)}, "Q4_0", "llama")
    [found] = [f for f in scan_models([tmp_path]).files if f.path.suffix == ".gguf"]
    assert not found.usable and "not a FLUX.1 or SD3.5 model file" in found.reason
