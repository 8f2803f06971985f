"""What a user is told when single files are missing, broken or the wrong kind."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from fixtures_single_file import flux_to_bfl, save, t5_comfy, tiny_flux, tiny_t5, tiny_vae, vae_to_ldm, write_flux

from app.errors import MissingModelFiles, UnreadableModel
from app.families.single_file import load_single_file_components


@pytest.fixture(scope="module")
def flux_tree(tmp_path_factory):
    return write_flux(tmp_path_factory.mktemp("errors") / "models")


def _with_parts(tiny, **parts):
    merged = {k: v for k, v in {**tiny.entry.parts, **parts}.items() if v is not None}
    return dataclasses.replace(tiny.entry, parts=merged)


def _load(entry, root, tmp_path, dtype=torch.float32):
    return load_single_file_components(entry, dtype, models_root=root, hf_cache=tmp_path / "no-cache")


def test_missing_t5_tokenizer_names_the_folders_and_files(tmp_path):
    tiny = write_flux(tmp_path / "models", tokenizer=False)
    with pytest.raises(MissingModelFiles) as err:
        _load(tiny.entry, tiny.root, tmp_path)
    message = str(err.value)
    assert str(tiny.root / "text_encoders" / "t5-tokenizer") in message
    assert str(tiny.root / "tokenizers" / "t5") in message
    assert "spiece.model" in message and "tokenizer_config.json" in message
    assert "models--black-forest-labs--FLUX.1-schnell" in message


def test_truncated_file_is_named(flux_tree, tmp_path):
    data = flux_tree.entry.parts["transformer"].read_bytes()
    truncated = tmp_path / "flux-truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableModel, match="flux-truncated.safetensors") as err:
        _load(_with_parts(flux_tree, transformer=truncated), flux_tree.root, tmp_path)
    assert "truncated" in str(err.value)


def test_pickled_checkpoint_is_refused_without_unpickling(flux_tree, tmp_path):
    pickled = tmp_path / "model.safetensors"
    torch.save({"img_in.weight": torch.zeros(1)}, pickled)
    with pytest.raises(UnreadableModel, match="model.safetensors"):
        _load(_with_parts(flux_tree, transformer=pickled), flux_tree.root, tmp_path)


def test_wrong_keys_are_named_with_the_file(flux_tree, tmp_path):
    tensors = flux_to_bfl(tiny_flux())
    tensors["double_blocks.0.img_attn.rope.weight"] = tensors.pop("double_blocks.0.img_attn.proj.weight")
    odd = save(tmp_path / "flux-odd.safetensors", tensors)
    with pytest.raises(UnreadableModel, match="flux-odd.safetensors") as err:
        _load(_with_parts(flux_tree, transformer=odd), flux_tree.root, tmp_path)
    assert "double_blocks.0.img_attn.rope.weight" in str(err.value)


def test_strict_load_names_missing_keys(flux_tree, tmp_path):
    tensors = t5_comfy(tiny_t5(seed=3))
    del tensors["encoder.block.1.layer.1.DenseReluDense.wo.weight"]
    t5 = save(tmp_path / "t5-pruned.safetensors", tensors)
    with pytest.raises(UnreadableModel, match="t5-pruned.safetensors") as err:
        _load(_with_parts(flux_tree, t5xxl=t5), flux_tree.root, tmp_path)
    assert "missing key encoder.block.1.layer.1.DenseReluDense.wo.weight" in str(err.value)


def test_a_vae_file_given_as_transformer_is_unreadable(flux_tree, tmp_path):
    with pytest.raises(UnreadableModel, match="ae.safetensors") as err:
        _load(_with_parts(flux_tree, transformer=flux_tree.entry.parts["vae"]), flux_tree.root, tmp_path)
    assert "it looks like a VAE" in str(err.value)


def test_four_channel_vae_is_refused(flux_tree, tmp_path):
    sd_vae = save(tmp_path / "vae-ft-mse.safetensors", vae_to_ldm(tiny_vae(latent_channels=4)))
    with pytest.raises(UnreadableModel) as err:
        _load(_with_parts(flux_tree, vae=sd_vae), flux_tree.root, tmp_path)
    assert "vae-ft-mse.safetensors" in str(err.value)
    assert "this VAE has 4 latent channels (SD1/SDXL); FLUX and SD3.5 need a 16-channel VAE" in str(err.value)


def test_missing_part_file_is_named_with_its_folder(flux_tree, tmp_path):
    gone = flux_tree.root / "text_encoders" / "clip_l_gone.safetensors"
    with pytest.raises(MissingModelFiles) as err:
        _load(_with_parts(flux_tree, clip_l=gone), flux_tree.root, tmp_path)
    assert str(gone) in str(err.value) and str(flux_tree.root / "text_encoders") in str(err.value)


def test_part_absent_from_the_entry_says_what_to_fetch(flux_tree, tmp_path):
    with pytest.raises(MissingModelFiles) as err:
        _load(_with_parts(flux_tree, t5xxl=None), flux_tree.root, tmp_path)
    message = str(err.value)
    assert "T5-XXL text encoder" in message and "t5xxl_fp16.safetensors" in message
    assert str(flux_tree.root / "text_encoders") in message


def test_a_scaled_fp8_file_loads_unscaled(flux_tree, tmp_path):
    """ComfyUI's t5xxl_fp8_e4m3fn_scaled: fp8 weights with a scale per layer (a scalar here, one per row there)."""
    scaled, plain = {"scaled_fp8": torch.zeros(0, dtype=torch.float8_e4m3fn)}, {}
    for index, (key, tensor) in enumerate(t5_comfy(tiny_t5(seed=3)).items()):
        if tensor.ndim != 2 or "embed" in key or "shared" in key:
            scaled[key] = plain[key] = tensor
            continue
        scale = tensor.abs().amax(dim=1, keepdim=True) / 448 if index % 2 else tensor.abs().max().reshape(1) / 448
        stored = (tensor / scale).to(torch.float8_e4m3fn)
        scaled[key], scaled[key.removesuffix(".weight") + ".scale_weight"] = stored, scale.flatten()
        plain[key] = stored.float() * scale
    files = {name: save(tmp_path / f"t5xxl_{name}.safetensors", tensors)
             for name, tensors in (("fp8_e4m3fn_scaled", scaled), ("reference", plain))}
    loaded = {name: _load(_with_parts(flux_tree, t5xxl=path), flux_tree.root, tmp_path)["text_encoder_2"]
              for name, path in files.items()}
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        out = {name: model(ids).last_hidden_state for name, model in loaded.items()}
    assert out["reference"].std() > 0.01
    torch.testing.assert_close(out["fp8_e4m3fn_scaled"], out["reference"])


def test_float16_keeps_t5_output_projections_in_float32(flux_tree, tmp_path):
    components = _load(flux_tree.entry, flux_tree.root, tmp_path, dtype=torch.float16)
    t5 = components["text_encoder_2"]
    assert t5.encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype == torch.float32
    assert t5.encoder.block[0].layer[1].DenseReluDense.wi_0.weight.dtype == torch.float16
    assert components["transformer"].x_embedder.weight.dtype == torch.float16


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_an_fp8_t5_stays_fp8_and_computes_what_its_upcast_weights_do(flux_tree, tmp_path, dtype):
    tensors = {k: v.to(torch.float8_e4m3fn) for k, v in t5_comfy(tiny_t5(seed=3)).items()}
    fp8 = save(tmp_path / "t5xxl_fp8_e4m3fn.safetensors", tensors)
    upcast = save(tmp_path / "t5xxl_upcast.safetensors", {k: v.to(torch.float32) for k, v in tensors.items()})
    kept = _load(_with_parts(flux_tree, t5xxl=fp8), flux_tree.root, tmp_path, dtype=dtype)["text_encoder_2"]
    reference = _load(_with_parts(flux_tree, t5xxl=upcast), flux_tree.root, tmp_path, dtype=dtype)["text_encoder_2"]
    block = kept.encoder.block[0]
    assert block.layer[0].SelfAttention.q.weight.dtype == torch.float8_e4m3fn  # one byte per weight
    assert kept.shared.weight.dtype == torch.float8_e4m3fn  # the embedding too, cast per call
    assert block.layer[0].layer_norm.weight.dtype == dtype  # norms in the compute dtype
    wo = torch.float32 if dtype == torch.float16 else dtype  # whole: T5 casts wo's input to its weight's dtype
    assert block.layer[1].DenseReluDense.wo.weight.dtype == wo  # (and fp16 would overflow in it)
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        torch.testing.assert_close(kept(ids).last_hidden_state, reference(ids).last_hidden_state)
