"""An fp8 (e4m3fn) FLUX.1 transformer file, as flux1-dev-fp8 ships: loaded with its weights still fp8 (one byte
per parameter, measured), computing exactly what the same weights upcast once compute, and counted by the
memory plan at its stored size."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from fixtures_single_file import assert_same_flux_output, flux_to_bfl, save, write_flux

from app.catalog.scan import scan_models
from app.engine.manager import footprint_of
from app.families.single_file import load_single_file_components


@pytest.fixture(scope="module")
def fp8_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("fp8") / "models"
    tiny = write_flux(root, prefix="")
    bfl = flux_to_bfl(tiny.originals["transformer"])
    # linear layers (weights and biases) in fp8, the norms' scales in bf16, as fp8 checkpoints are saved
    fp8 = {k: v.to(torch.float8_e4m3fn) if v.ndim == 2 or k.endswith(".bias") else v.to(torch.bfloat16)
           for k, v in bfl.items()}
    (root / "diffusion_models" / "flux-tiny.safetensors").unlink()
    save(root / "diffusion_models" / "flux-tiny-fp8.safetensors", fp8)
    # the same fp8 values already upcast: what a loader that does not keep fp8 would hold
    upcast = {k: v.to(torch.float32) for k, v in fp8.items()}
    save(root / "reference" / "flux-tiny-upcast.safetensors", upcast)
    return root


def load(root, name):
    entry = {m.name: m for m in scan_models([root]).models}[name]
    return entry, load_single_file_components(entry, torch.float32, models_root=root,
                                              hf_cache=root / "no-cache")["transformer"]


def test_fp8_weights_stay_fp8_and_compute_what_the_upcast_weights_do(fp8_tree):
    entry, kept = load(fp8_tree, "flux-tiny-fp8")
    reference = fp8_tree / "reference" / "flux-tiny-upcast.safetensors"
    upcast_entry = replace(entry, path=reference, parts={**entry.parts, "transformer": reference})
    upcast = load_single_file_components(upcast_entry, torch.float32, models_root=fp8_tree,
                                         hf_cache=fp8_tree / "no-cache")["transformer"]
    q = kept.transformer_blocks[0].attn.to_q.weight
    assert q.dtype == torch.float8_e4m3fn and q.element_size() == 1  # one byte per parameter in memory
    assert kept.transformer_blocks[0].attn.norm_q.weight.dtype == torch.float32  # norms run in the compute dtype
    # every linear layer stays fp8 but those diffusers casts whole: the norms' modulations and proj_out
    linear = {name: m.weight.dtype for name, m in kept.named_modules() if isinstance(m, torch.nn.Linear)}
    whole = {name for name in linear if "norm" in name or name == "proj_out"}
    assert {name for name, dtype in linear.items() if dtype != torch.float8_e4m3fn} == whole
    assert_same_flux_output(kept, upcast)


def test_the_memory_plan_counts_an_fp8_transformer_at_its_stored_size(fp8_tree):
    entry, _ = load(fp8_tree, "flux-tiny-fp8")
    assert entry.label == "fp8 e4m3fn"
    transformer_file = entry.parts["transformer"]
    footprint = footprint_of(entry)
    assert footprint.transformer <= transformer_file.stat().st_size  # not doubled to bf16
    assert footprint.transformer > 0.8 * transformer_file.stat().st_size
