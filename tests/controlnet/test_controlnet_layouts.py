"""ControlNet files: each released layout identified from its tensors, listed by a catalog scan, and loaded
into its diffusers class with the saved weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from controlnet_fixtures import (
    TINY_SD3_INSTANTX, TINY_SD35, as_header, bfl_control_lora_shapes, bfl_control_shapes, flux_controlnet,
    random_state, sd3_controlnet, stability_sd35_state, state_of, with_config, write, xlabs_shapes,
)

from app.catalog.identify import identify
from app.catalog.scan import scan_models
from app.controlnet.layouts import (
    INSTANTX_UNION_MODES, UNION_PRO_2_TYPES, control_types, controlnet_layout, layout_of_file,
)
from app.controlnet.load import load_controlnet
from app.errors import UnreadableModel

ROOT = Path(__file__).resolve().parents[2]


def _flux(kind: str):
    """A tiny FLUX ControlNet of each diffusers-named layout, and its state dict."""
    overrides = {
        "instantx": {},
        "union": {"num_mode": 10},
        "union-pro-2": {"num_layers": 6, "num_single_layers": 0},  # as Shakker released it
        "jasperai": {"num_layers": 5, "num_single_layers": 0},  # jasperai's configs
        "xlabs": {"in_channels": 64, "num_single_layers": 0, "conditioning_embedding_channels": 16, "patch_size": 2},
    }[kind]
    model = flux_controlnet(**overrides)
    return model, state_of(model)


# name, flavour, control types, file writer (tmp dir -> path, model or None, saved state)
def _instantx(d):
    m, s = _flux("instantx")
    return write(d / "FLUX.1-dev-Controlnet-Canny.safetensors", s), m, s


def _jasperai(d):
    m, s = _flux("jasperai")
    return write(d / "Flux.1-dev-Controlnet-Upscaler.safetensors", s), m, s


def _union(d):
    m, s = _flux("union")
    return write(d / "FLUX.1-dev-Controlnet-Union.safetensors", s), m, s


def _union_pro_2(d):
    m, s = _flux("union-pro-2")
    return write(d / "FLUX.1-dev-ControlNet-Union-Pro-2.0.safetensors", s), m, s


def _xlabs_diffusers(d):
    m, s = _flux("xlabs")
    return write(d / "flux-depth-controlnet-diffusers.safetensors", s), m, s


def _xlabs(d):
    s = random_state(xlabs_shapes())
    return write(d / "flux-canny-controlnet-v3.safetensors", s), None, s


def _stability(d):
    s = stability_sd35_state()
    return write(d / "sd3.5_large_controlnet_canny.safetensors", s), None, s


def _sd35_diffusers(d):
    m = sd3_controlnet(TINY_SD35)
    return write(d / "sd35-large-controlnet-blur.safetensors", state_of(m)), m, state_of(m)


def _sd3_instantx(d):
    m = sd3_controlnet(TINY_SD3_INSTANTX)
    return write(d / "SD3-Controlnet-Pose.safetensors", state_of(m)), m, state_of(m)


LOADABLE = [
    ("flux", "instantx", ("canny",), _instantx),
    ("flux", "instantx", ("tile",), _jasperai),
    ("flux", "union", tuple(INSTANTX_UNION_MODES), _union),
    ("flux", "union-pro-2", UNION_PRO_2_TYPES, _union_pro_2),
    ("flux", "xlabs", ("depth",), _xlabs_diffusers),
    ("flux", "xlabs", ("canny",), _xlabs),
    ("sd3", "sd35", ("canny",), _stability),
    ("sd3", "sd35", ("blur",), _sd35_diffusers),
    ("sd3", "instantx", ("pose",), _sd3_instantx),
]
CLASSES = {"flux": "FluxControlNetModel", "sd3": "SD3ControlNetModel"}


@pytest.mark.parametrize("family, flavour, types, make", LOADABLE, ids=[f"{r[1]}-{r[3].__name__}" for r in LOADABLE])
def test_each_layout_is_identified_listed_and_loaded(tmp_path, family, flavour, types, make):
    path, model, state = make(tmp_path / "models" / "controlnet")
    layout = layout_of_file(path)
    assert (layout.family, layout.flavour, layout.model_class) == (family, flavour, CLASSES[family])
    assert layout.pixel_hint == (flavour == "xlabs")
    assert dict(layout.union_modes) == (dict(INSTANTX_UNION_MODES) if flavour == "union" else {})
    assert control_types(layout, path.name) == types
    [found] = scan_models([tmp_path / "models"]).files_of_kind("controlnet")
    assert (found.path, found.family, found.variant, found.control_types) == (path, family, flavour, types)

    loaded = load_controlnet(path, torch.float32)
    assert type(loaded).__name__ == CLASSES[family]
    assert all(p.device.type == "cpu" for p in loaded.parameters())
    if model is not None:  # diffusers-named: every tensor comes back as saved
        assert loaded.state_dict().keys() == model.state_dict().keys()
        assert all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())


def test_xlabs_keys_become_diffusers_modules(tmp_path):
    path, _, state = _xlabs(tmp_path)
    model = load_controlnet(path, torch.float32)
    assert (model.config.patch_size, model.config.conditioning_embedding_channels) == (2, 16)
    assert (model.config.num_layers, model.config.num_single_layers, model.config.guidance_embeds) == (2, 0, True)
    block = model.transformer_blocks[1]
    q, k, v = state["double_blocks.1.img_attn.qkv.weight"].chunk(3)
    assert torch.equal(block.attn.to_q.weight, q) and torch.equal(block.attn.to_v.weight, v)
    assert torch.equal(block.attn.add_k_proj.weight, state["double_blocks.1.txt_attn.qkv.weight"].chunk(3)[1])
    assert torch.equal(block.attn.norm_added_q.weight, state["double_blocks.1.txt_attn.norm.query_norm.scale"])
    assert torch.equal(model.controlnet_x_embedder.weight, state["pos_embed_input.weight"])
    assert torch.equal(model.input_hint_block.conv_in.weight, state["input_hint_block.0.weight"])
    assert torch.equal(model.input_hint_block.blocks[5].weight, state["input_hint_block.12.weight"])
    assert torch.equal(model.input_hint_block.conv_out.bias, state["input_hint_block.14.bias"])
    assert torch.equal(model.time_text_embed.guidance_embedder.linear_1.weight, state["guidance_in.in_layer.weight"])


def test_stability_sd35_keys_become_diffusers_modules(tmp_path):
    path, _, state = _stability(tmp_path)
    model = load_controlnet(path, torch.bfloat16)
    assert model.config.joint_attention_dim is None and model.pos_embed is None
    assert (model.config.num_attention_heads, model.config.force_zeros_for_pooled_projection) == (2, False)
    block = model.transformer_blocks[0]
    assert block.attn.to_k.weight.dtype == torch.bfloat16
    assert torch.equal(block.attn.to_k.weight, state["transformer_blocks.0.attn.qkv.weight"].chunk(3)[1].bfloat16())
    assert torch.equal(block.norm1.linear.bias, state["transformer_blocks.0.adaLN_modulation.1.bias"].bfloat16())
    assert torch.equal(block.ff.net[2].weight, state["transformer_blocks.0.mlp.fc2.weight"].bfloat16())
    assert torch.equal(model.pos_embed_input.proj.weight, state["pos_embed_input.proj.weight"].bfloat16())


def test_the_files_config_comes_before_one_read_from_shapes(tmp_path):
    model = flux_controlnet(axes_dims_rope=[4, 6, 6])  # shapes alone would give (2, 6, 8)
    plain = write(tmp_path / "plain.safetensors", state_of(model))
    own = write(tmp_path / "own.safetensors", state_of(model), metadata=with_config(model))
    assert list(load_controlnet(plain, torch.float32).config.axes_dims_rope) == [2, 6, 8]
    assert list(load_controlnet(own, torch.float32).config.axes_dims_rope) == [4, 6, 6]
    wrong = json.loads(with_config(model)["config"]) | {"_class_name": "SD3ControlNetModel"}
    write(tmp_path / "wrong.safetensors", state_of(model), metadata={"config": json.dumps(wrong)})
    with pytest.raises(UnreadableModel, match="names SD3ControlNetModel"):
        load_controlnet(tmp_path / "wrong.safetensors", torch.float32)


@pytest.mark.parametrize("folder_name", ["controlnet", "ControlNet"])
def test_a_diffusers_folder_is_one_entry_named_by_the_folder(tmp_path, folder_name):
    model = flux_controlnet(num_mode=10, axes_dims_rope=[4, 6, 6])
    folder = tmp_path / "models" / folder_name / "FLUX.1-dev-Controlnet-Union"
    model.save_pretrained(folder)
    (tmp_path / "models" / "Stable-diffusion").mkdir()  # an A1111 tree
    scan = scan_models([tmp_path / "models"])
    [found] = scan.files_of_kind("controlnet")
    assert (found.path, found.variant, found.key_layout) == (folder, "union", "diffusers")
    assert [f.path for f in scan.files] == [folder]
    loaded = load_controlnet(folder, torch.float32)
    assert list(loaded.config.axes_dims_rope) == [4, 6, 6]  # config.json, not the shapes
    assert torch.equal(loaded.controlnet_mode_embedder.weight, model.controlnet_mode_embedder.weight)


def test_a_sharded_diffusers_folder_loads_every_shard(tmp_path):
    model = flux_controlnet()
    folder = tmp_path / "sharded"
    model.save_pretrained(folder, max_shard_size="40KB")
    assert (folder / "diffusion_pytorch_model.safetensors.index.json").is_file()
    loaded = load_controlnet(folder, torch.float32)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_a_folder_of_another_class_is_unusable(tmp_path):
    folder = tmp_path / "models" / "controlnet" / "not-a-controlnet"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": "FluxTransformer2DModel"}))
    write(folder / "diffusion_pytorch_model.safetensors", {"x": torch.zeros(1)})
    scan = scan_models([tmp_path / "models"])
    assert scan.files_of_kind("controlnet") == []
    [bad] = scan.unusable_files()
    assert bad.path == folder and "FluxTransformer2DModel" in bad.reason


def test_controlnets_in_extra_paths_are_listed(tmp_path):
    path, _, _ = _union(tmp_path / "ComfyUI" / "models" / "controlnet")
    config = tmp_path / "easel" / "extra_model_paths.yaml"
    config.parent.mkdir()
    config.write_text("comfyui:\n    base_path: ../ComfyUI/\n    controlnet: models/controlnet/\n")
    scan = scan_models([tmp_path / "easel" / "models"], extra_paths_file=config)
    assert [f.path for f in scan.files_of_kind("controlnet")] == [path]


@pytest.mark.parametrize("shapes, name, types", [
    (bfl_control_shapes(), "flux1-canny-dev", ("canny",)),
    (bfl_control_shapes(diffusers=True), "FLUX.1-Depth-dev", ("depth",)),
    ({"model.diffusion_model." + k: v for k, v in bfl_control_shapes().items()}, "flux1-depth-dev-comfy", ("depth",)),
])
def test_bfl_control_models_are_controlnets_not_generation_models(tmp_path, shapes, name, types):
    path = write(tmp_path / "models" / "diffusion_models" / f"{name}.safetensors",
                 {k: torch.zeros(s, dtype=torch.float16) for k, s in shapes.items()})
    scan = scan_models([tmp_path / "models"])
    assert scan.models == []
    [found] = scan.files_of_kind("controlnet")
    assert (found.path, found.family, found.variant, found.control_types) == (path, "flux", "bfl-control", types)
    assert layout_of_file(path).model_class == ""
    with pytest.raises(UnreadableModel, match="FluxControlPipeline"):
        load_controlnet(path, torch.float32)


@pytest.mark.parametrize("diffusers", [False, True])
def test_bfl_control_loras_are_controlnets_not_loras(tmp_path, diffusers):
    path = write(tmp_path / "models" / "loras" / "flux1-depth-dev-lora.safetensors",
                 random_state(bfl_control_lora_shapes(diffusers=diffusers)))
    scan = scan_models([tmp_path / "models"])
    assert scan.files_of_kind("lora") == []
    [found] = scan.files_of_kind("controlnet")
    assert (found.family, found.variant, found.control_types) == ("flux", "bfl-control-lora", ("depth",))
    with pytest.raises(UnreadableModel, match="LoRA by BFL"):
        load_controlnet(path, torch.float32)


@pytest.mark.parametrize("shapes, kind", [
    (bfl_control_lora_shapes(in_channels=64), "lora"),  # a LoRA that trained the plain input projection
    ({"transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": (4, 8),
      "transformer.single_transformer_blocks.0.attn.to_q.lora_B.weight": (8, 4)}, "lora"),
    ({"conv_first.weight": (1,), "body.0.rdb1.conv1.weight": (1,), "conv_last.weight": (1,)}, "upscaler"),
    ({"img_in.weight": (3072, 64), "double_blocks.0.img_attn.qkv.weight": (1,), "single_blocks.0.linear1.weight": (1,),
      "guidance_in.in_layer.weight": (1,)}, "flux-transformer"),
    ({"x_embedder.weight": (8, 64), "context_embedder.weight": (1,), "transformer_blocks.0.attn.to_q.weight": (1,),
      "transformer_blocks.0.norm1_context.linear.weight": (1,), "single_transformer_blocks.0.attn.to_q.weight": (1,),
      "proj_out.weight": (1,)}, "flux-transformer"),
])
def test_other_files_are_not_controlnets(shapes, kind):
    header = as_header(shapes)
    assert controlnet_layout(header) is None
    assert identify(header).kind == kind


def test_other_controlnet_layouts_are_unknown_not_transformers():
    mistoline = xlabs_shapes() | {"controlnet_blocks.0.linear.weight": (32, 32)}
    del mistoline["controlnet_blocks.0.weight"], mistoline["pos_embed_input.weight"]
    found = identify(as_header(mistoline))
    assert found.kind == "unknown" and "ControlNet of a layout Easel does not read" in found.problem
    sd15 = identify(as_header({"controlnet_cond_embedding.conv_in.weight": (1,),
                               "controlnet_down_blocks.0.weight": (1,),
                               "down_blocks.0.resnets.0.conv1.weight": (1,), "conv_in.weight": (1,)}))
    assert sd15.kind == "unknown" and "Stable Diffusion 1.x/XL ControlNet" in sd15.problem


def test_corrupt_and_truncated_files_are_not_listed_and_do_not_load(tmp_path):
    folder = tmp_path / "models" / "controlnet"
    path, _, _ = _union(folder)
    data = path.read_bytes()
    (folder / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (folder / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    path.unlink()
    scan = scan_models([tmp_path / "models"])
    assert scan.files_of_kind("controlnet") == []
    reasons = {f.path.name: f.reason for f in scan.unusable_files()}
    assert reasons["cut.safetensors"].startswith("truncated") and reasons["garbage.safetensors"].startswith("corrupt")
    for name in ("cut.safetensors", "garbage.safetensors"):
        with pytest.raises(UnreadableModel):
            load_controlnet(folder / name, torch.float32)


def test_loading_is_strict_and_names_the_keys(tmp_path):
    model, state = _flux("instantx")
    missing = write(tmp_path / "missing.safetensors",
                    {k: v for k, v in state.items() if k != "controlnet_blocks.0.bias"})
    with pytest.raises(UnreadableModel, match=r"missing controlnet_blocks\.0\.bias"):
        load_controlnet(missing, torch.float32)
    extra = write(tmp_path / "extra.safetensors", state | {"controlnet_extra.weight": torch.zeros(2)})
    with pytest.raises(UnreadableModel, match=r"unexpected controlnet_extra\.weight"):
        load_controlnet(extra, torch.float32)
    config = json.loads(with_config(model)["config"]) | {"joint_attention_dim": 40}
    mismatched = write(tmp_path / "mismatched.safetensors", state, metadata={"config": json.dumps(config)})
    with pytest.raises(UnreadableModel, match="context_embedder.weight"):
        load_controlnet(mismatched, torch.float32)
    lora = write(tmp_path / "lora.safetensors", random_state(bfl_control_lora_shapes(in_channels=64)))
    with pytest.raises(UnreadableModel, match="not a ControlNet"):
        load_controlnet(lora, torch.float32)


def test_a_union_model_offers_only_the_modes_it_was_trained_with():
    header = as_header(state_of(flux_controlnet(num_mode=4)))
    assert dict(controlnet_layout(header).union_modes) == {"canny": 0, "tile": 1, "depth": 2, "blur": 3}


@pytest.mark.parametrize("name, types", [
    ("flux1-canny-dev-lora.safetensors", ("canny",)),
    ("sd3.5_large_controlnet_depth.safetensors", ("depth",)),
    ("Flux.1-dev-Controlnet-Surface-Normals", ("normal",)),
    ("flux-controlnet-openpose-v1", ("pose",)),
    ("Shakker-Labs-grayscale", ("gray",)),
    ("mistoline_flux.dev_v1", ("lineart",)),
    ("FLUX.1-dev-Controlnet-low-quality", ("low-quality",)),
    ("compose-tileless-blurred", ("tile", "blur")),
    ("diffusion_pytorch_model.safetensors", ()),
    ("decompose", ()),
])
def test_control_types_of_a_single_type_model_come_from_its_name(name, types):
    layout = controlnet_layout(as_header(state_of(flux_controlnet())))
    assert control_types(layout, name) == types


def test_layouts_and_the_loader_import_without_torch():
    code = ("import sys, app.catalog.scan, app.controlnet.layouts, app.controlnet.load; "
            "print(sorted(m for m in ('torch', 'diffusers', 'accelerate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
