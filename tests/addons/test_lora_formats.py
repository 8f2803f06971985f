"""LoRA formats on the released architectures (built on the meta device): every key of each format
lands on a module and the report counts it; files that do not fit say what they are.

Where diffusers has its own converter for a format (kohya FLUX, XLabs, BFL control), the modules
and deltas planned here are checked against it; for kohya SD3 (which diffusers loads with no
effect) the map is checked against the checkpoint converter Easel runs on full SD3 files.
"""

from __future__ import annotations

import functools
import json
import re

import pytest
import torch
from fixtures_lora import (
    Maker, add_lora, bfl_control_flux, kohya_clip_l, kohya_flux, kohya_sd3, kohya_sdxl, kohya_t5, loha,
    meta_text_encoder, meta_transformer, peft_modules, save, xlabs_flux,
)

from app.addons import lora_keys_sd3
from app.addons.lora_formats import LoraFile, detect_format, guess_family, read_lora
from app.addons.lora_match import CONTROL_REASON, LoraDoesNotFit, plan_lora_patches
from app.errors import EaselError, UnreadableModel


@pytest.fixture(scope="module")
def meta():
    """Released transformers on the meta device, built once per variant."""
    return functools.cache(meta_transformer)


@pytest.fixture(scope="module")
def flux(meta):
    return meta("flux-dev")


def lora(tensors: dict, name: str = "demo.safetensors", metadata: dict | None = None) -> LoraFile:
    return LoraFile(tensors, metadata or {}, detect_format(tensors), guess_family(tensors), name)


def modules_of(plan, component: str = "transformer", param: str = "weight") -> set[str]:
    return {p.module for p in plan.patches if p.component == component and p.param == param}


def lora_a_modules(converted: dict) -> set[str]:
    return {k.removeprefix("transformer.").removesuffix(".lora_A.weight") for k in converted if k.endswith(".lora_A.weight")}


def assert_every_key_lands(plan, tensors, components):
    assert plan.skipped == [], plan.warning()
    assert plan.matched == len(tensors)
    assert plan.warning() is None
    for patch in plan.patches:
        module = components[patch.component].get_submodule(patch.module)
        assert patch.shape == tuple(getattr(module, patch.param).shape)


# --- FLUX --------------------------------------------------------------------------------------------
def test_kohya_flux_with_clip_l_lands_every_key(flux):
    clip = meta_text_encoder("flux-dev", "text_encoder")
    tensors = {**kohya_flux(flux), **kohya_clip_l(clip)}
    components = {"transformer": flux, "text_encoder": clip}
    plan = plan_lora_patches(lora(tensors), components, family="flux")
    assert (plan.format, plan.family_guess) == ("kohya", "flux")
    assert_every_key_lands(plan, tensors, components)
    # 10 top-level, 19 double blocks x 14 modules (q/k/v split), 38 single blocks x 6 (linear1 split in 4)
    assert len(modules_of(plan)) == 10 + 19 * 14 + 38 * 6
    assert len(modules_of(plan, "text_encoder")) == clip.config.num_hidden_layers * 6


def test_kohya_flux_matches_diffusers_converter(flux):
    from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers

    tensors = kohya_flux(flux, alpha=0.5)
    plan = plan_lora_patches(lora(tensors), {"transformer": flux}, family="flux")
    theirs = _convert_kohya_flux_lora_to_diffusers(dict(tensors))
    assert modules_of(plan) == lora_a_modules(theirs)

    def their_delta(module):
        key = next(k for k in theirs if k.removeprefix("transformer.") == f"{module}.lora_A.weight")
        return theirs[key.replace("lora_A", "lora_B")].float() @ theirs[key].float()

    # the fused q/k/v (+ MLP) splits, alpha / rank, the final norm's swapped halves (plain renames are
    # covered by the module sets above)
    sample = {f"transformer_blocks.0.attn.{m}" for m in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj",
                                                        "add_v_proj", "to_out.0")}
    sample |= {f"single_transformer_blocks.0.{m}" for m in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")}
    sample |= {"proj_out", "norm_out.linear", "x_embedder", "time_text_embed.guidance_embedder.linear_1"}
    checked = [p for p in plan.patches if p.module in sample]
    assert len(checked) == len(sample)
    for patch in checked:
        expected = their_delta(patch.module)
        if patch.module in ("proj_out", "norm_out.linear"):
            expected = expected * 0.5  # diffusers drops the final layer's alphas ("TODO: alphas"); kohya applies them
        torch.testing.assert_close(patch.delta(1.0, torch.float32), expected, msg=patch.module)


def test_dev_lora_on_schnell_reports_the_guidance_keys(flux, meta):
    flux_schnell = meta("flux-schnell")
    tensors = kohya_flux(flux)
    plan = plan_lora_patches(lora(tensors), {"transformer": flux_schnell}, family="flux")
    guidance = sorted(k for k in tensors if "guidance_in" in k)
    assert len(guidance) == 6
    assert sorted(plan.skipped) == guidance
    assert plan.matched == len(tensors) - 6
    assert "no module guidance_in_in_layer in the transformer" in plan.skip_reasons[guidance[0]]
    assert plan.warning().startswith(f"demo.safetensors: 6 of {len(tensors)} keys are ignored")


@pytest.mark.parametrize("prefix", ["transformer.", "", "base_model.model."])
def test_diffusers_and_ai_toolkit_names_land(flux, prefix):
    tensors = peft_modules(flux, prefix)
    plan = plan_lora_patches(lora(tensors), {"transformer": flux}, family="flux")
    assert plan.format == "diffusers"
    assert_every_key_lands(plan, tensors, {"transformer": flux})
    assert all(p.rows is None for p in plan.patches)


def test_comfyui_and_kohya_diffusers_named_flux_loras_land(flux):
    make = Maker(9)
    comfy, mixture = {}, {}
    add_lora(comfy, "diffusion_model.double_blocks.3.img_attn.qkv", 9216, 3072, make, alpha=1.0)
    add_lora(comfy, "diffusion_model.single_blocks.5.linear2", 3072, 15360, make, alpha=1.0)
    add_lora(mixture, "lora_transformer_single_transformer_blocks_2_attn_to_k", 3072, 3072, make, alpha=1.0)
    add_lora(mixture, "lora_transformer_transformer_blocks_1_ff_context_net_0_proj", 12288, 3072, make, alpha=1.0)
    plan = plan_lora_patches(lora(comfy), {"transformer": flux}, family="flux")
    assert plan.format == "comfyui" and plan.skipped == []
    assert modules_of(plan) == {"transformer_blocks.3.attn.to_q", "transformer_blocks.3.attn.to_k",
                                "transformer_blocks.3.attn.to_v", "single_transformer_blocks.5.proj_out"}
    plan = plan_lora_patches(lora(mixture), {"transformer": flux}, family="flux")
    assert plan.skipped == []
    assert modules_of(plan) == {"single_transformer_blocks.2.attn.to_k", "transformer_blocks.1.ff_context.net.0.proj"}


def test_xlabs_matches_diffusers_converter(flux):
    from diffusers.loaders.lora_conversion_utils import _convert_xlabs_flux_lora_to_diffusers

    tensors = xlabs_flux(flux)
    plan = plan_lora_patches(lora(tensors), {"transformer": flux}, family="flux")
    assert plan.format == "xlabs"
    assert_every_key_lands(plan, tensors, {"transformer": flux})
    assert modules_of(plan) == lora_a_modules(_convert_xlabs_flux_lora_to_diffusers(dict(tensors)))
    # single blocks: qkv_lora reaches q, k, v (not the MLP input), proj_lora the attention inputs of proj_out
    single = {p.module: p for p in plan.patches if p.module.startswith("single_transformer_blocks.0.")}
    assert set(single) == {f"single_transformer_blocks.0.{m}" for m in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_out")}
    delta = single["single_transformer_blocks.0.proj_out"].delta(1.0, torch.float32)
    down, up = (tensors[f"single_blocks.0.processor.proj_lora.{r}.weight"] for r in ("down", "up"))
    assert delta.shape == (3072, 15360)
    torch.testing.assert_close(delta[:, :3072], up @ down)
    assert torch.count_nonzero(delta[:, 3072:]) == 0


def test_bfl_control_lora_lands_its_lora_parts_and_reports_the_rest(flux):
    from diffusers.loaders.lora_conversion_utils import _convert_bfl_flux_control_lora_to_diffusers

    tensors = bfl_control_flux(flux)
    plan = plan_lora_patches(lora(tensors), {"transformer": flux}, family="flux")
    assert plan.format == "bfl-control"
    theirs = _convert_bfl_flux_control_lora_to_diffusers(dict(tensors))
    assert modules_of(plan) == lora_a_modules(theirs) - {"x_embedder"}
    assert modules_of(plan, param="bias") == modules_of(plan)
    norms = [k for k in tensors if k.endswith(".scale")]
    widened = [k for k in tensors if k.startswith("img_in.")]
    assert sorted(plan.skipped) == sorted(norms + widened)
    assert all(CONTROL_REASON in plan.skip_reasons[k] for k in plan.skipped)
    assert plan.matched == len(tensors) - len(norms) - 3
    bias = next(p for p in plan.patches if p.module == "transformer_blocks.0.attn.to_k" and p.param == "bias")
    torch.testing.assert_close(bias.delta(1.0, torch.float32), theirs["transformer.transformer_blocks.0.attn.to_k.lora_B.bias"])


def test_lycoris_loha_on_a_fused_flux_module_is_split(flux):
    make = Maker(11)
    tensors = {**loha("lora_unet_double_blocks_0_img_attn_qkv", 9216, 3072, make),
               **loha("lora_unet_single_blocks_1_linear1", 21504, 3072, make)}
    plan = plan_lora_patches(lora(tensors), {"transformer": flux}, family="flux")
    assert plan.format == "lycoris" and plan.skipped == [] and plan.matched == 10
    assert modules_of(plan) == {"transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_k",
                                "transformer_blocks.0.attn.to_v", "single_transformer_blocks.1.attn.to_q",
                                "single_transformer_blocks.1.attn.to_k", "single_transformer_blocks.1.attn.to_v",
                                "single_transformer_blocks.1.proj_mlp"}


# --- SD3 / SD3.5 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant,dual", [("sd3.5-large", False), ("sd3.5-medium", True)])
def test_kohya_sd3_lands_every_key(variant, dual, meta):
    model = meta(variant)
    tensors = kohya_sd3(model)
    plan = plan_lora_patches(lora(tensors), {"transformer": model}, family="sd3")
    assert (plan.format, plan.family_guess) == ("kohya", "sd3")
    assert_every_key_lands(plan, tensors, {"transformer": model})
    modules = modules_of(plan)
    last = len(model.transformer_blocks) - 1
    assert {"transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.add_v_proj", "transformer_blocks.0.ff.net.2",
            "transformer_blocks.0.norm1_context.linear", f"transformer_blocks.{last}.norm1_context.linear",
            "norm_out.linear", "proj_out"} <= modules
    assert ("transformer_blocks.0.attn2.to_q" in modules) == dual
    assert f"transformer_blocks.{last}.ff_context.net.0.proj" not in modules


@pytest.mark.parametrize("variant", ["sd3.5-large", "sd3.5-medium"])
def test_sd3_map_agrees_with_the_checkpoint_converter_row_by_row(variant, meta):
    """Row-labelled tensors under every original name of the map go through the converter Easel
    uses for full SD3 files: it must take every name (no unknown, none missing) and put each
    labelled row where the map says (q/k/v thirds, the swapped halves of the pre-only norms)."""
    from app.families.keys_sd3 import convert_original_to_diffusers

    model = meta(variant)
    targets = lora_keys_sd3.original_targets(model)
    state, starts, start = {}, {}, 0
    for name, parts in targets.items():
        n = sum(len(rows) for _, rows in parts)
        starts[name] = start
        state[f"{name}.weight"] = torch.arange(start, start + n).unsqueeze(1)
        state[f"{name}.bias"] = torch.arange(start, start + n)
        start += n
    for i, block in enumerate(model.transformer_blocks):
        for side in ["x_block.attn", "context_block.attn"] + (["x_block.attn2"] if block.attn2 is not None else []):
            for norm in ("ln_q", "ln_k"):
                state[f"joint_blocks.{i}.{side}.{norm}.weight"] = torch.zeros(1)
    state["pos_embed"] = torch.zeros(1)
    converted = convert_original_to_diffusers(state)
    for name, parts in targets.items():
        for module, rows in parts:
            assert torch.equal(converted[f"{module}.weight"].squeeze(1) - starts[name], rows), module
            assert torch.equal(converted[f"{module}.bias"] - starts[name], rows), module
    linear_like = {k.removesuffix(".weight") for k in converted
                   if k.endswith(".weight") and not re.search(r"\.norm_(added_)?[qk]\.weight$", k)}
    assert {m for parts in targets.values() for m, _ in parts} == linear_like


def test_kohya_sd3_text_encoders_land_on_clip_l_clip_g_and_t5(meta):
    sd3_large = meta("sd3.5-large")
    encoders = {f"text_encoder{s}": meta_text_encoder("sd3.5-large", f"text_encoder{s}") for s in ("", "_2", "_3")}
    tensors = {**kohya_sd3(sd3_large), **kohya_clip_l(encoders["text_encoder"], "lora_te1_"),
               **kohya_clip_l(encoders["text_encoder_2"], "lora_te2_"), **kohya_t5(encoders["text_encoder_3"], "lora_te3_")}
    components = {"transformer": sd3_large, **encoders}
    plan = plan_lora_patches(lora(tensors), components, family="sd3")
    assert_every_key_lands(plan, tensors, components)
    assert len(modules_of(plan, "text_encoder")) == 12 * 6
    assert len(modules_of(plan, "text_encoder_2")) == 32 * 6
    assert len(modules_of(plan, "text_encoder_3")) == 24 * 7


def test_a_text_encoder_that_is_not_loaded_is_reported(meta):
    sd3_large = meta("sd3.5-large")
    t5 = meta_text_encoder("sd3.5-large", "text_encoder_3")
    tensors = {**kohya_sd3(sd3_large), **kohya_t5(t5, "lora_te3_")}
    plan = plan_lora_patches(lora(tensors), {"transformer": sd3_large, "text_encoder_3": None}, family="sd3")
    assert sorted(plan.skipped) == sorted(k for k in tensors if k.startswith("lora_te3_"))
    assert plan.skip_reasons[plan.skipped[0]] == "the model has no text_encoder_3 loaded"


# --- files that do not fit ---------------------------------------------------------------------------
def test_sdxl_lora_on_flux_names_the_file_what_it_is_and_the_model(flux):
    with pytest.raises(LoraDoesNotFit) as caught:
        plan_lora_patches(lora(kohya_sdxl()), {"transformer": flux}, family="flux", model_name="FLUX.1-dev")
    assert str(caught.value) == "demo.safetensors: no key matches this model (it looks like an SDXL LoRA; the model is FLUX.1-dev)"
    assert isinstance(caught.value, EaselError)
    assert caught.value.plan.matched == 0


def test_flux_lora_on_sd3_says_so(flux, meta):
    sd3_medium = meta("sd3.5-medium")
    with pytest.raises(LoraDoesNotFit, match=r"it looks like a FLUX\.1 LoRA; the model is SD3\.5 Medium"):
        plan_lora_patches(lora(kohya_flux(flux)), {"transformer": sd3_medium}, family="sd3", model_name="SD3.5 Medium")


def test_sd1_and_diffusers_sd3_loras_are_told_apart():
    make = Maker(12)
    sd1, sd3 = {}, {}
    add_lora(sd1, "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", 320, 320, make, alpha=1.0)
    add_lora(sd1, "lora_te_text_model_encoder_layers_0_self_attn_q_proj", 768, 768, make, alpha=1.0)
    add_lora(sd3, "transformer.transformer_blocks.0.attn.to_q", 2432, 2432, make, down="lora_A.weight", up="lora_B.weight")
    assert guess_family(sd1) == "sd1"
    assert guess_family(sd3) == "sd3"
    assert guess_family(kohya_sdxl()) == "sdxl"


def test_a_partly_matching_file_counts_what_it_skipped(flux):
    tensors = kohya_flux(flux)
    make = Maker(13)
    add_lora(tensors, "lora_unet_double_blocks_40_img_attn_proj", 3072, 3072, make, alpha=1.0)
    tensors["lora_unet_single_blocks_0_linear2.weird_thing"] = torch.zeros(1)
    plan = plan_lora_patches(lora(tensors), {"transformer": flux}, family="flux")
    assert len(plan.skipped) == 4
    assert plan.matched == len(tensors) - 4
    assert plan.skip_reasons["lora_unet_double_blocks_40_img_attn_proj.lora_up.weight"] == (
        "no module double_blocks_40_img_attn_proj in the transformer")
    assert "4 of" in plan.warning()


def test_a_lora_of_the_wrong_width_is_a_shape_mismatch_not_a_crash(flux):
    tensors = {}
    add_lora(tensors, "lora_unet_double_blocks_0_img_attn_proj", 2432, 2432, Maker(14), alpha=1.0)
    with pytest.raises(LoraDoesNotFit, match="shape does not fit: the file's module is 2432 x 2432, "
                                               "transformer transformer_blocks.0.attn.to_out.0 is 3072 x 3072"):
        plan_lora_patches(lora(tensors), {"transformer": flux}, family="flux")


def test_unsupported_lycoris_kinds_are_refused_by_name(flux):
    tensors = {"lora_unet_double_blocks_0_img_attn_proj.oft_blocks": torch.zeros(4, 768, 768),
               "lora_unet_double_blocks_0_img_attn_proj.alpha": torch.tensor(1.0)}
    with pytest.raises(LoraDoesNotFit, match="LyCORIS OFT is not supported"):
        plan_lora_patches(lora(tensors), {"transformer": flux}, family="flux")


# --- reading files -----------------------------------------------------------------------------------
def test_read_lora_gives_tensors_metadata_format_and_family(tmp_path, meta):
    sd3_medium = meta("sd3.5-medium")
    tensors = kohya_sd3(sd3_medium)
    path = save(tmp_path / "style.safetensors", tensors, {"ss_network_dim": "1", "ss_base_model_version": "sd3"})
    read = read_lora(path)
    assert (read.format, read.family, read.name) == ("kohya", "sd3", "style.safetensors")
    assert read.metadata["ss_network_dim"] == "1"
    assert read.tensors.keys() == tensors.keys()
    assert torch.equal(read.tensors["lora_unet_joint_blocks_0_x_block_attn_qkv.lora_up.weight"],
                       tensors["lora_unet_joint_blocks_0_x_block_attn_qkv.lora_up.weight"])


@pytest.mark.parametrize("make_file,message", [
    (lambda p: p.with_suffix(".pt").write_bytes(b"\x80\x02}q\x00."), "Easel loads LoRAs only as .safetensors"),
    (lambda p: save(p, {"x_embedder.weight": torch.zeros(2, 2)}), "not a LoRA file: none of its 1 keys"),
    (lambda p: p.write_bytes(save(p, {"a.lora_A.weight": torch.zeros(8, 8)}).read_bytes()[:-10]), "truncated"),
])
def test_unreadable_files_say_why(tmp_path, make_file, message):
    path = tmp_path / "bad.safetensors"
    make_file(path)
    target = path.with_suffix(".pt") if "only as" in message else path
    with pytest.raises(UnreadableModel, match=message):
        read_lora(target)


@pytest.mark.parametrize("keys,fmt", [
    (["double_blocks.0.processor.qkv_lora1.down.weight"], "xlabs"),
    (["lora_unet_double_blocks_0_img_attn_qkv.hada_w1_a"], "lycoris"),
    (["lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight"], "kohya"),
    (["diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight"], "comfyui"),
    (["double_blocks.0.img_attn.qkv.lora_A.weight", "double_blocks.0.img_attn.norm.key_norm.scale"], "bfl-control"),
    (["double_blocks.0.img_attn.qkv.lora_A.weight"], "bfl"),
    (["transformer.single_transformer_blocks.0.attn.to_q.lora_B.weight"], "diffusers"),
])
def test_format_is_told_from_key_names(keys, fmt):
    assert detect_format(keys) == fmt


def test_peft_adapter_metadata_alpha_sets_the_scale(tmp_path, flux):
    tensors = peft_modules(flux, "transformer.", only=["transformer_blocks.0.attn.to_q", "proj_out"])
    metadata = {"lora_adapter_metadata": json.dumps({"transformer.r": 1, "transformer.lora_alpha": 4,
                                                     "transformer.alpha_pattern": {"proj_out": 2}})}
    plan = plan_lora_patches(read_lora(save(tmp_path / "peft.safetensors", tensors, metadata)),
                             {"transformer": flux}, family="flux")
    scale = {p.module: p.adapter.scale for p in plan.patches}
    assert scale == {"transformer_blocks.0.attn.to_q": 4.0, "proj_out": 2.0}
    plain = plan_lora_patches(lora(tensors), {"transformer": flux}, family="flux")
    assert {p.adapter.scale for p in plain.patches} == {1.0}
