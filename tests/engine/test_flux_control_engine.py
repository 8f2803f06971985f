"""BFL's FLUX.1 Canny/Depth dev, the whole model and its LoRA, chosen as ControlNet units on the FLUX demo
model: each reaches its FluxControl pipeline and follows its control picture, the loaded model is its own
again after (bit for bit), and what these models cannot do is refused at submit, named.

The control files are made here from the demo transformer with the released files' key names: the whole
model in diffusers keys under ComfyUI's "model.diffusion_model." prefix, the LoRA in BFL names
(img_in / double_blocks / single_blocks, lora_A / lora_B / lora_B.bias, norm ".scale" tensors)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import FluxTransformer2DModel
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from app.engine.engine import Engine
from app.families.keys_flux import AXES_DIMS_METADATA_KEY
from app.errors import InvalidRequest
from app.generation.request import ControlNetAddon, LoraAddon, validate_request
from app.settings import Settings

FLUX, SD3 = "easel-demo-flux", "easel-demo-sd3"
PROMPT = "a red circle on a blue background"
SIZE = 64
CONTROL_CHANNELS = 128


def control_model_state(transformer) -> dict:
    """The demo transformer with a 128-channel input projection whose control half is random."""
    g = torch.Generator().manual_seed(11)
    state = {k: v.clone().contiguous() for k, v in transformer.state_dict().items()}
    weight = state["x_embedder.weight"]
    extra = torch.randn(weight.shape[0], CONTROL_CHANNELS - weight.shape[1], generator=g) * 0.5
    state["x_embedder.weight"] = torch.cat([weight, extra], dim=1).contiguous()
    return {f"model.diffusion_model.{k}": v for k, v in state.items()}


def write_control_pipeline(transformer, folder) -> None:
    """The same control model as BFL's diffusers repo holds it: a FluxControlPipeline folder whose
    transformer/ takes 128 channels (the other components are not read for a ControlNet unit)."""
    sub = folder / "transformer"
    sub.mkdir(parents=True)
    state = {k.removeprefix("model.diffusion_model."): v for k, v in control_model_state(transformer).items()}
    save_file(state, str(sub / "diffusion_pytorch_model.safetensors"))
    config = {**dict(transformer.config), "in_channels": CONTROL_CHANNELS, "out_channels": 64,
              "_class_name": "FluxTransformer2DModel"}
    (sub / "config.json").write_text(json.dumps(config))
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "FluxControlPipeline",
                                                          "transformer": ["diffusers", "FluxTransformer2DModel"]}))


def control_lora_state(transformer, rank: int = 4) -> dict:
    g = torch.Generator().manual_seed(12)
    inner = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    head = transformer.config.attention_head_dim
    shapes = {"img_in": (inner, CONTROL_CHANNELS), "double_blocks.0.img_attn.qkv": (3 * inner, inner),
              "single_blocks.0.linear2": (inner, inner + 4 * inner)}
    state = {}
    for name, (out, inp) in shapes.items():
        state[f"{name}.lora_A.weight"] = torch.randn(rank, inp, generator=g) * 0.3
        state[f"{name}.lora_B.weight"] = torch.randn(out, rank, generator=g) * 0.3
        state[f"{name}.lora_B.bias"] = torch.randn(out, generator=g) * 0.05
    for i in range(transformer.config.num_layers):
        for side in ("img_attn", "txt_attn"):
            for norm in ("query_norm", "key_norm"):
                state[f"double_blocks.{i}.{side}.norm.{norm}.scale"] = 1 + torch.randn(head, generator=g) * 0.3
    for i in range(transformer.config.num_single_layers):
        for norm in ("query_norm", "key_norm"):
            state[f"single_blocks.{i}.norm.{norm}.scale"] = 1 + torch.randn(head, generator=g) * 0.3
    return state


def user_lora_state(transformer) -> dict:
    g = torch.Generator().manual_seed(13)
    inner = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    return {"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.randn(2, inner, generator=g) * 0.5,
            "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": torch.randn(inner, 2, generator=g) * 0.5}


@pytest.fixture(scope="module")
def fc_engine(demo_models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("flux-control-models")
    models = root / "models"
    (models / "controlnet").mkdir(parents=True)
    (models / "loras").mkdir()
    (models / "demo").symlink_to(demo_models_dir / "demo", target_is_directory=True)
    flux = FluxTransformer2DModel.from_pretrained(str(demo_models_dir / "demo" / FLUX / "transformer"))
    save_file(control_model_state(flux), str(models / "controlnet" / "flux1-canny-dev.safetensors"),
              metadata={AXES_DIMS_METADATA_KEY: json.dumps(list(flux.config.axes_dims_rope))})  # not the released 128
    write_control_pipeline(flux, models / "FLUX.1-Canny-dev")
    save_file(control_lora_state(flux), str(models / "controlnet" / "flux1-depth-dev-lora.safetensors"))
    save_file(user_lora_state(flux), str(models / "loras" / "user-style.safetensors"))
    engine = Engine(Settings(models_dir=models, outputs_dir=root / "out", device="cpu", max_loaded_models=2,
                             settings_file=root / "s.json"))
    yield engine
    engine.close()


def picture(x: int) -> Image.Image:
    im = Image.new("RGB", (SIZE, SIZE), (30, 60, 220))
    ImageDraw.Draw(im).rectangle((x, 20, x + 20, 40), fill=(220, 30, 30))
    return im


def run(engine, units=(), model=FLUX, **extra):
    req = validate_request(prompt=PROMPT, model=model, width=SIZE, height=SIZE, seed=7, save=False, steps=2,
                           addons=tuple(units), **extra)
    return engine.generate(req, timeout=300)


def pixels(result):
    return np.asarray(result.images[0]).astype(int)


def unit(image, model, **extra):
    return ControlNetAddon(model=model, module=extra.pop("module", "canny"), image=image, **extra)


@pytest.mark.parametrize("name", ["flux1-canny-dev", "flux1-depth-dev-lora"])
def test_each_control_model_reaches_its_pipeline_and_follows_its_picture(fc_engine, name):
    base = pixels(run(fc_engine))
    left = run(fc_engine, [unit(picture(4), name)], cfg_scale=3.0)
    right = run(fc_engine, [unit(picture(40), name)], cfg_scale=3.0)
    assert left.images[0].size == (SIZE, SIZE)
    assert any("not available with FluxControlPipeline" in w for w in left.warnings)
    assert np.abs(pixels(left) - base).mean() > 1.0
    assert np.abs(pixels(left) - pixels(right)).mean() > 0.5  # the control picture reaches the model
    assert f'ControlNet 0: "Module: canny, Model: {name} [' in left.infotexts[0]
    assert "Lora hashes" not in left.infotexts[0]
    assert np.array_equal(pixels(run(fc_engine)), base)  # the loaded model is its own again


def test_the_control_lora_weight_is_its_strength_and_0_leaves_it_out(fc_engine):
    base = pixels(run(fc_engine))
    full = pixels(run(fc_engine, [unit(picture(4), "flux1-depth-dev-lora")]))
    half = pixels(run(fc_engine, [unit(picture(4), "flux1-depth-dev-lora", weight=0.5)]))
    off = run(fc_engine, [unit(picture(4), "flux1-depth-dev-lora", weight=0.0)])
    assert np.abs(full - half).mean() > 0.5
    assert np.array_equal(pixels(off), base) and "ControlNet 0" not in off.infotexts[0]


def test_a_control_lora_beside_a_user_lora_comes_out_cleanly(fc_engine):
    styled = pixels(run(fc_engine, [LoraAddon(name="user-style", weight=1.0)]))
    both = run(fc_engine, [LoraAddon(name="user-style", weight=1.0), unit(picture(4), "flux1-depth-dev-lora")])
    assert "Lora hashes: \"user-style: " in both.infotexts[0], both.infotexts[0]
    assert np.array_equal(pixels(run(fc_engine, [LoraAddon(name="user-style", weight=1.0)])), styled)
    assert np.array_equal(pixels(run(fc_engine, [unit(picture(4), "flux1-canny-dev")])),
                          pixels(run(fc_engine, [unit(picture(4), "flux1-canny-dev")])))


@pytest.mark.parametrize("name", ["flux1-canny-dev", "flux1-depth-dev-lora"])
def test_img2img_and_inpaint_run_the_control_pipelines(fc_engine, name):
    source = picture(20)
    img2img = run(fc_engine, [unit(None, name)], task="img2img", image=source, strength=0.6, cfg_scale=3.0)
    assert any("not available with FluxControlImg2ImgPipeline" in w for w in img2img.warnings)
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (32, 0, SIZE, SIZE))
    inpaint = run(fc_engine, [unit(source, name)], task="inpaint", image=source, mask=mask, mask_blur=0,
                  cfg_scale=3.0)
    assert any("not available with FluxControlInpaintPipeline" in w for w in inpaint.warnings)
    assert np.array_equal(np.asarray(inpaint.images[0])[:, :24], np.asarray(source)[:, :24])


@pytest.mark.parametrize("name,extra,field,words", [
    ("flux1-canny-dev", dict(weight=0.5), "addons[0].weight", "weight 1"),
    ("flux1-depth-dev-lora", dict(guidance_end=0.5), "addons[0].guidance_start", "every step"),
    ("flux1-depth-dev-lora", dict(control_mode="prompt"), "addons[0].control_mode", "Balanced"),
    ("flux1-canny-dev", dict(mask=Image.new("L", (SIZE, SIZE), 255)), "addons[0].mask", "no unit mask"),
])
def test_what_a_control_model_cannot_take_is_refused_named(fc_engine, name, extra, field, words):
    with pytest.raises(InvalidRequest) as err:
        run(fc_engine, [unit(picture(4), name, **extra)])
    assert err.value.field == field and words in err.value.message


def test_a_control_model_runs_alone_on_flux_without_stages(fc_engine):
    with pytest.raises(InvalidRequest) as err:
        run(fc_engine, [unit(picture(4), "flux1-canny-dev"), unit(picture(4), "flux1-depth-dev-lora")])
    assert err.value.field == "addons[1].model" and "runs alone" in err.value.message
    with pytest.raises(InvalidRequest) as err:
        run(fc_engine, [unit(picture(4), "flux1-canny-dev")], model=SD3)
    assert err.value.field == "addons[0].model" and "FLUX.1 ControlNet" in err.value.message
    with pytest.raises(InvalidRequest) as err:
        run(fc_engine, [unit(picture(4), "flux1-depth-dev-lora")],
            stages=[{"kind": "hires", "scale": 1.5, "upscaler": "Lanczos"}])
    assert err.value.field == "addons[0].model" and "hires fix" in err.value.message


def test_the_same_seed_starts_from_the_same_noise_with_a_control_lora(fc_engine):
    base = pixels(run(fc_engine))
    faint = pixels(run(fc_engine, [unit(picture(4), "flux1-depth-dev-lora", weight=0.001)]))
    assert np.abs(faint - base).mean() < 1.0


def test_a_diffusers_flux_control_pipeline_folder_is_the_same_control_model(fc_engine):
    assert "FLUX.1-Canny-dev" not in [m.name for m in fc_engine.models()]
    from_folder = run(fc_engine, [unit(picture(4), "FLUX.1-Canny-dev")])
    from_file = run(fc_engine, [unit(picture(4), "flux1-canny-dev")])
    assert np.array_equal(pixels(from_folder), pixels(from_file))
    assert 'Model: FLUX.1-Canny-dev [' in from_folder.infotexts[0], from_folder.infotexts[0][-400:]
