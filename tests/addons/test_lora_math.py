"""LoRA deltas on small real modules: applied to a weight, each kind gives the weight worked out by
hand; a fused file module and the same LoRA under diffusers' names patch a model identically."""

from __future__ import annotations

import pytest
import torch
from fixtures_lora import Maker, add_lora, save

from app.addons.lora_formats import LoraFile, detect_format, guess_family, read_lora
from app.addons.lora_match import plan_lora_patches
from app.addons.lora_math import Full, Hadamard, IncompleteAdapter, Kronecker, LowRank, build_adapter, patch_delta


def linear(out: int, inp: int, dtype=torch.float32) -> torch.nn.Linear:
    layer = torch.nn.Linear(inp, out, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(out * inp, dtype=torch.float32).reshape(out, inp))
    return layer


def test_lora_delta_is_up_down_times_alpha_over_rank_times_strength():
    layer = linear(2, 3)
    before = layer.weight.detach().clone()
    down = torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]])
    up = torch.tensor([[1.0, 0.0], [2.0, 4.0]])
    adapter = LowRank(down, up, alpha=1.0)  # rank 2: scale 1/2
    with torch.no_grad():
        layer.weight += patch_delta(adapter, layer.weight.shape, 3.0, layer.weight.dtype)
    expected = before + torch.tensor([[1.0, 2.0, 3.0], [2.0, 8.0, 6.0]]) * 0.5 * 3.0
    assert torch.equal(layer.weight, expected)


def test_strength_zero_leaves_the_weight_exactly_as_it_was():
    layer = linear(4, 4, torch.bfloat16)
    before = layer.weight.detach().clone()
    adapter = LowRank(torch.randn(1, 4), torch.randn(4, 1), alpha=1.0)
    with torch.no_grad():
        layer.weight += patch_delta(adapter, layer.weight.shape, 0.0, layer.weight.dtype)
    assert torch.equal(layer.weight, before)


def test_delta_is_computed_in_float32_and_returned_in_the_weights_dtype():
    # rank 2 with cancellation: in float32 the delta is 2**-10 (a bfloat16 number); rounding the
    # factors to bfloat16 first (1 + 2**-10 is not one) would give 0
    down = torch.tensor([[1.0 + 2**-10], [-1.0]])
    up = torch.tensor([[1.0, 1.0]])
    delta = patch_delta(LowRank(down, up), (1, 1), 1.0, torch.bfloat16)
    assert delta.dtype == torch.bfloat16
    assert delta.item() == 2**-10
    # float16 factors whose product overflows float16 (max 65504)
    half = patch_delta(LowRank(torch.tensor([[512.0]], dtype=torch.float16), torch.tensor([[256.0]], dtype=torch.float16)),
                       (1, 1), 1.0, torch.float32)
    assert half.dtype == torch.float32 and half.item() == 131072.0


def test_rows_of_a_fused_up_matrix_are_that_modules_share():
    down, up = torch.randn(2, 5), torch.randn(9, 2)
    adapter = LowRank(down, up, alpha=4.0)  # scale 2
    full = up @ down * 2
    k_rows = torch.arange(3, 6)
    torch.testing.assert_close(patch_delta(adapter, (3, 5), 1.0, torch.float32, rows=k_rows), full[3:6])
    swapped = torch.cat([torch.arange(5, 9), torch.arange(0, 5)])
    torch.testing.assert_close(patch_delta(adapter, (9, 5), 1.0, torch.float32, rows=swapped), full[swapped])


def test_loha_delta_by_hand():
    w1_a, w1_b = torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0, 3.0]])
    w2_a, w2_b = torch.tensor([[2.0], [1.0]]), torch.tensor([[1.0, 1.0]])
    adapter = Hadamard(w1_a, w1_b, w2_a, w2_b, alpha=0.5)  # rank 1: scale 0.5
    # (w1_a @ w1_b) = [[1, 3], [2, 6]], (w2_a @ w2_b) = [[2, 2], [1, 1]]
    expected = torch.tensor([[2.0, 6.0], [2.0, 6.0]]) * 0.5
    assert torch.equal(patch_delta(adapter, (2, 2), 1.0, torch.float32), expected)
    assert torch.equal(patch_delta(adapter, (1, 2), 1.0, torch.float32, rows=torch.tensor([1])), expected[1:])


def test_lokr_delta_by_hand_with_full_and_low_rank_factors():
    w1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    w2 = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.equal(patch_delta(Kronecker(w1, w2, alpha=8.0), (4, 4), 1.0, torch.float32),
                       torch.tensor([[1.0, 2, 0, 0], [3, 4, 0, 0], [0, 0, 2, 4], [0, 0, 6, 8]]))  # no pair: scale 1
    w2_a, w2_b = torch.tensor([[1.0], [3.0]]), torch.tensor([[1.0, 2.0]])  # w2_a @ w2_b = [[1, 2], [3, 6]]
    adapter = Kronecker(w1, w2_a=w2_a, w2_b=w2_b, alpha=0.5)  # rank 1: scale 0.5
    expected = torch.tensor([[1.0, 2, 0, 0], [3, 6, 0, 0], [0, 0, 2, 4], [0, 0, 6, 12]]) * 0.5
    assert torch.equal(patch_delta(adapter, (4, 4), 1.0, torch.float32), expected)


def test_loha_tucker_cores_match_the_conv_rebuild():
    g = torch.Generator().manual_seed(0)
    r, out, inp, k = 2, 3, 4, 3
    t1, t2 = torch.randn(r, r, k, k, generator=g), torch.randn(r, r, k, k, generator=g)
    w1_a, w1_b, w2_a, w2_b = (torch.randn(r, n, generator=g) for n in (out, inp, out, inp))
    adapter = Hadamard(w1_a, w1_b, w2_a, w2_b, alpha=2.0, t1=t1, t2=t2)
    one = torch.einsum("ijkl,jr,ip->prkl", t1, w1_b, w1_a)
    two = torch.einsum("ijkl,jr,ip->prkl", t2, w2_b, w2_a)
    torch.testing.assert_close(patch_delta(adapter, (out, inp, k, k), 1.0, torch.float32), one * two)


def test_a_delta_over_the_leading_columns_is_zero_beyond_them():
    adapter = LowRank(torch.ones(1, 2), torch.ones(3, 1))
    delta = patch_delta(adapter, (3, 5), 1.0, torch.float32, columns=2)
    assert torch.equal(delta, torch.tensor([[1.0, 1, 0, 0, 0]] * 3))


def test_full_differences_are_added_as_they_are():
    diff = torch.arange(6.0).reshape(2, 3)
    assert torch.equal(patch_delta(Full(diff), (2, 3), 2.0, torch.float32), diff * 2)
    assert torch.equal(patch_delta(Full(torch.ones(3), 0.5), (3,), 1.0, torch.float32), torch.full((3,), 0.5))


def test_incomplete_and_inconsistent_modules_say_what_is_wrong():
    with pytest.raises(IncompleteAdapter, match="no lora_up / lora_B tensor"):
        build_adapter({"down": torch.ones(1, 3)}, None)
    with pytest.raises(IncompleteAdapter, match="lokr_w2_a, lokr_w2_b"):
        build_adapter({"lokr_w1": torch.ones(2, 2)}, None)
    with pytest.raises(ValueError, match="lora_down has rank 2 but lora_up has rank 1"):
        build_adapter({"down": torch.ones(2, 3), "up": torch.ones(3, 1)}, None)
    with pytest.raises(ValueError, match=r"cannot be added to a weight of \(4, 4\)"):
        patch_delta(LowRank(torch.ones(1, 3), torch.ones(3, 1)), (4, 4), 1.0, torch.float32)


# --- whole plans applied to tiny real models ----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_flux():
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    return FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                  attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                  pooled_projection_dim=16, guidance_embeds=True, axes_dims_rope=(4, 6, 6))


def _lora(tensors, name="tiny.safetensors") -> LoraFile:
    return LoraFile(tensors, {}, detect_format(tensors), guess_family(tensors), name)


def _patched(model, plan, strength: float) -> dict[str, torch.Tensor]:
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for patch in plan.patches:
        key = f"{patch.module}.{patch.param}"
        weights[key] += patch.delta(strength, weights[key].dtype, weights[key].device)
    return weights


def test_kohya_fused_qkv_and_the_same_lora_in_diffusers_names_patch_alike(tiny_flux):
    make = Maker(21)
    kohya = {}
    add_lora(kohya, "lora_unet_double_blocks_0_img_attn_qkv", 96, 32, make, alpha=1.0, rank=2)
    add_lora(kohya, "lora_unet_single_blocks_0_linear1", 3 * 32 + 128, 32, make, alpha=4.0, rank=2)
    down, up = kohya["lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"], kohya["lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight"]
    s_down, s_up = kohya["lora_unet_single_blocks_0_linear1.lora_down.weight"], kohya["lora_unet_single_blocks_0_linear1.lora_up.weight"]
    peft = {}
    for i, name in enumerate(("to_q", "to_k", "to_v")):
        peft[f"transformer.transformer_blocks.0.attn.{name}.lora_A.weight"] = down * 0.5  # alpha 1 / rank 2
        peft[f"transformer.transformer_blocks.0.attn.{name}.lora_B.weight"] = up[32 * i: 32 * (i + 1)]
    for name, rows in (("attn.to_q", slice(0, 32)), ("attn.to_k", slice(32, 64)), ("attn.to_v", slice(64, 96)),
                       ("proj_mlp", slice(96, 224))):
        peft[f"transformer.single_transformer_blocks.0.{name}.lora_A.weight"] = s_down * 2.0  # alpha 4 / rank 2
        peft[f"transformer.single_transformer_blocks.0.{name}.lora_B.weight"] = s_up[rows]
    from_kohya = _patched(tiny_flux, plan_lora_patches(_lora(kohya), {"transformer": tiny_flux}, family="flux"), 0.8)
    from_peft = _patched(tiny_flux, plan_lora_patches(_lora(peft), {"transformer": tiny_flux}, family="flux"), 0.8)
    base = tiny_flux.state_dict()
    changed = [k for k in base if not torch.equal(from_kohya[k], base[k])]
    assert len(changed) == 7
    for key in base:
        torch.testing.assert_close(from_kohya[key], from_peft[key], msg=key)


def test_a_lora_read_from_disk_patches_the_weight_by_its_alpha(tmp_path, tiny_flux):
    make = Maker(22)
    tensors = {}
    add_lora(tensors, "lora_unet_double_blocks_0_img_attn_proj", 32, 32, make, alpha=0.25)
    path = save(tmp_path / "proj.safetensors", {k: v.to(torch.bfloat16) for k, v in tensors.items()})
    plan = plan_lora_patches(read_lora(path), {"transformer": tiny_flux}, family="flux")
    weights = _patched(tiny_flux, plan, 2.0)
    down = tensors["lora_unet_double_blocks_0_img_attn_proj.lora_down.weight"].to(torch.bfloat16).float()
    up = tensors["lora_unet_double_blocks_0_img_attn_proj.lora_up.weight"].to(torch.bfloat16).float()
    expected = tiny_flux.transformer_blocks[0].attn.to_out[0].weight + up @ down * 0.25 * 2.0
    torch.testing.assert_close(weights["transformer_blocks.0.attn.to_out.0.weight"], expected)
