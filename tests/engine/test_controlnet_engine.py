"""ControlNet units through the engine on the random-weight demo models: each layout reaches its
pipeline and changes the picture, inactive units give the base image exactly, union modes, masks and
control modes act, several units run together, and what cannot run is refused at submit, named.

The ControlNets are random (every weight, so the zero-initialised layers act too), made here to fit the
demo transformers; that a ControlNet teaches composition is the shipped demo ones' part
(tests/demo/test_demo_controlnet_content.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import FluxControlNetModel, FluxTransformer2DModel, SD3ControlNetModel, SD3Transformer2DModel
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from app.engine.engine import Engine
from app.errors import InvalidRequest
from app.generation.request import ControlNetAddon, validate_request
from app.settings import Settings

FLUX, SD3 = "easel-demo-flux", "easel-demo-sd3"
PROMPT = "a red circle on a blue background"
SIZE = 64


def randomised(model, seed: int):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def save(model, path):
    import inspect

    accepted = inspect.signature(type(model).__init__).parameters
    config = {k: v for k, v in dict(model.config).items() if k in accepted}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"config": json.dumps(config)})


def flux_controlnet(transformer, **extra):
    c = transformer.config
    extra = {"num_single_layers": 1, **extra}
    return FluxControlNetModel(in_channels=c.in_channels, num_layers=1,
                               attention_head_dim=c.attention_head_dim, num_attention_heads=c.num_attention_heads,
                               joint_attention_dim=c.joint_attention_dim, pooled_projection_dim=c.pooled_projection_dim,
                               guidance_embeds=c.guidance_embeds, axes_dims_rope=list(c.axes_dims_rope), **extra)


@pytest.fixture(scope="module")
def cn_engine(demo_models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("controlnet-models")
    models = root / "models"
    models.mkdir()
    (models / "demo").symlink_to(demo_models_dir / "demo", target_is_directory=True)
    folder = models / "controlnet"
    folder.mkdir()
    flux = FluxTransformer2DModel.from_pretrained(str(demo_models_dir / "demo" / FLUX / "transformer"))
    sd3 = SD3Transformer2DModel.from_pretrained(str(demo_models_dir / "demo" / SD3 / "transformer"))
    save(randomised(flux_controlnet(flux), 1), folder / "flux-canny.safetensors")
    save(randomised(flux_controlnet(flux), 2), folder / "flux-depth.safetensors")
    save(randomised(flux_controlnet(flux, num_mode=10), 3), folder / "flux-union.safetensors")
    save(randomised(flux_controlnet(flux, num_single_layers=0, conditioning_embedding_channels=16,
                                          patch_size=2), 4),
         folder / "flux-xlabs-canny.safetensors")
    c = sd3.config
    sd3_net = SD3ControlNetModel(sample_size=c.sample_size, patch_size=c.patch_size, in_channels=c.in_channels,
                                 num_layers=1, attention_head_dim=c.attention_head_dim,
                                 num_attention_heads=c.num_attention_heads, joint_attention_dim=c.joint_attention_dim,
                                 caption_projection_dim=c.caption_projection_dim,
                                 pooled_projection_dim=c.pooled_projection_dim, out_channels=c.out_channels,
                                 pos_embed_max_size=c.pos_embed_max_size, qk_norm=c.qk_norm,
                                 force_zeros_for_pooled_projection=False)
    save(randomised(sd3_net, 5), folder / "sd3-canny.safetensors")
    engine = Engine(Settings(models_dir=models, outputs_dir=root / "out", device="cpu", max_loaded_models=2,
                             settings_file=root / "s.json"))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def square():
    im = Image.new("RGB", (SIZE, SIZE), (30, 60, 220))
    ImageDraw.Draw(im).rectangle((8, 20, 28, 40), fill=(220, 30, 30))
    return im


def run(engine, model=FLUX, units=(), **extra):
    req = validate_request(prompt=PROMPT, model=model, width=SIZE, height=SIZE, seed=7, save=False, steps=2,
                           addons=tuple(units), **extra)
    return engine.generate(req, timeout=300)


def pixels(result):
    return np.asarray(result.images[0]).astype(int)


def unit(image, model="flux-canny", **extra):
    return ControlNetAddon(model=model, module=extra.pop("module", "canny"), image=image, **extra)


@pytest.mark.parametrize("model,name", [(FLUX, "flux-canny"), (FLUX, "flux-xlabs-canny"), (SD3, "sd3-canny")])
def test_each_layout_loads_reaches_its_pipeline_and_changes_the_picture(cn_engine, square, model, name):
    base = run(cn_engine, model)
    controlled = run(cn_engine, model, [unit(square, name)])
    assert controlled.images[0].size == (SIZE, SIZE)
    assert np.abs(pixels(controlled) - pixels(base)).mean() > 1.0
    assert f'ControlNet 0: "Module: canny, Model: {name} [' in controlled.infotexts[0]


def test_weight_0_and_an_empty_schedule_give_the_base_image_exactly(cn_engine, square):
    base = pixels(run(cn_engine))
    assert np.array_equal(pixels(run(cn_engine, units=[unit(square, weight=0.0)])), base)
    assert np.array_equal(pixels(run(cn_engine, units=[unit(square, guidance_end=0.0)])), base)
    assert "ControlNet 0" not in run(cn_engine, units=[unit(square, weight=0.0)]).infotexts[0]


def test_two_units_both_act_and_both_are_written(cn_engine, square):
    one = pixels(run(cn_engine, units=[unit(square)]))
    other = pixels(run(cn_engine, units=[unit(square, "flux-depth")]))
    both = run(cn_engine, units=[unit(square), unit(square, "flux-depth", weight=0.8)])
    assert np.abs(pixels(both) - one).mean() > 0.5 and np.abs(pixels(both) - other).mean() > 0.5
    assert "ControlNet 0:" in both.infotexts[0] and "ControlNet 1:" in both.infotexts[0]
    assert "Model: flux-depth [" in both.infotexts[0] and "Weight: 0.8" in both.infotexts[0]


def test_union_modes_reach_the_call(cn_engine, square):
    canny = run(cn_engine, units=[unit(square, "flux-union")])
    depth = run(cn_engine, units=[unit(square, "flux-union", control_type="depth")])
    again = run(cn_engine, units=[unit(square, "flux-union", control_type="canny")])
    assert "Union Control Type: canny" in canny.infotexts[0] and "Union Control Type: depth" in depth.infotexts[0]
    assert np.array_equal(pixels(canny), pixels(again))  # the preprocessor's mode is canny
    assert not np.array_equal(pixels(canny), pixels(depth))
    with pytest.raises(InvalidRequest) as err:
        run(cn_engine, units=[unit(square, "flux-union", module="none")])
    assert err.value.field == "addons[0].control_type" and "canny" in err.value.message


def test_a_mask_and_the_control_modes_shape_what_the_unit_adds(cn_engine, square):
    plain = pixels(run(cn_engine, units=[unit(square)]))
    left = Image.new("L", (SIZE, SIZE), 0)
    left.paste(255, (0, 0, SIZE // 2, SIZE))
    masked = pixels(run(cn_engine, units=[unit(square, mask=left)]))
    prompt_first = run(cn_engine, units=[unit(square, control_mode="prompt")])
    assert np.abs(masked - plain).mean() > 0.5
    assert np.abs(pixels(prompt_first) - plain).mean() > 0.5
    assert "Control Mode: My prompt is more important" in prompt_first.infotexts[0]
    sd3_balanced = pixels(run(cn_engine, SD3, [unit(square, "sd3-canny")], cfg_scale=4.0))
    sd3_control = run(cn_engine, SD3, [unit(square, "sd3-canny", control_mode="controlnet")], cfg_scale=4.0)
    assert np.abs(pixels(sd3_control) - sd3_balanced).mean() > 0.5 and not sd3_control.warnings
    flux_control = run(cn_engine, units=[unit(square, control_mode="controlnet")])
    assert any("ran as Balanced" in w for w in flux_control.warnings)


def test_img2img_and_inpaint_take_units_on_flux(cn_engine, square):
    img2img = run(cn_engine, units=[unit(None)], task="img2img", image=square, strength=0.6, cfg_scale=3.0)
    assert img2img.images[0].size == (SIZE, SIZE) and "ControlNet 0" in img2img.infotexts[0]
    assert any("not available with FluxControlNetImg2ImgPipeline" in w for w in img2img.warnings)
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (32, 0, SIZE, SIZE))
    inpaint = run(cn_engine, units=[unit(square)], task="inpaint", image=square, mask=mask, mask_blur=0)
    kept = np.asarray(inpaint.images[0])[:, :24]
    assert np.array_equal(kept, np.asarray(square)[:, :24])  # outside the mask the picture stays


@pytest.mark.parametrize("build,field,words", [
    (lambda sq: dict(model=SD3, task="img2img", image=sq, units=[unit(None, "sd3-canny")]), "addons[0].kind",
     "txt2img"),
    (lambda sq: dict(model=SD3, units=[unit(sq)]), "addons[0].model", "FLUX.1 ControlNet"),
    (lambda sq: dict(units=[unit(sq, "no-such-net")]), "addons[0].model", "flux-canny"),
    (lambda sq: dict(units=[unit(sq, module="no-such-module")]), "addons[0].module", "canny"),
    (lambda sq: dict(units=[unit(sq, module="depth_anything_v2")]), "addons[0].module", "annotators"),
    (lambda sq: dict(units=[unit(sq), unit(sq, "flux-xlabs-canny")]), "addons[0].model", "XLabs"),
])
def test_what_cannot_run_is_refused_at_submit_named(cn_engine, square, build, field, words):
    with pytest.raises(InvalidRequest) as err:
        run(cn_engine, **build(square))
    assert err.value.field == field and words in err.value.message


def test_a_unit_without_an_image_on_txt2img_is_refused_before_queueing():
    with pytest.raises(InvalidRequest) as err:
        validate_request(prompt=PROMPT, addons=[ControlNetAddon(model="flux-canny")])
    assert err.value.field == "addons[0].image" and "control image" in err.value.message
    with pytest.raises(InvalidRequest) as err:
        validate_request(prompt=PROMPT, addons=[{"kind": "controlnet", "model": "m", "guidance_start": 0.8,
                                                  "guidance_end": 0.2}])
    assert "guidance_start" in err.value.field


def test_two_units_sharing_a_model_keep_their_own_masks(cn_engine, square):
    moved = Image.new("RGB", (SIZE, SIZE), (30, 60, 220))
    ImageDraw.Draw(moved).rectangle((36, 20, 56, 40), fill=(220, 30, 30))
    left = Image.new("L", (SIZE, SIZE), 0)
    left.paste(255, (0, 0, SIZE // 2, SIZE))
    first_masked = pixels(run(cn_engine, units=[unit(square, mask=left), unit(moved)]))
    second_masked = pixels(run(cn_engine, units=[unit(square), unit(moved, mask=left)]))
    assert np.abs(first_masked - second_masked).mean() > 0.5  # each mask shapes its own unit only


def test_only_masked_inpaint_refuses_units_and_an_inactive_unit_needs_no_image(square):
    mask = Image.new("L", (SIZE, SIZE), 255)
    with pytest.raises(InvalidRequest) as err:
        validate_request(prompt=PROMPT, task="inpaint", image=square, mask=mask, inpaint_only_masked=True,
                         addons=[ControlNetAddon(model="flux-canny", image=square)])
    assert err.value.field == "addons[0]" and "Only masked" in err.value.message
    off = validate_request(prompt=PROMPT, addons=[ControlNetAddon(model="flux-canny", weight=0.0)])
    assert off.addons[0].image is None  # left out of the job, so it needs no picture


@pytest.mark.parametrize("model,name", [(FLUX, "flux-canny"), (SD3, "sd3-canny")])
def test_the_same_seed_starts_from_the_same_noise_with_a_unit(cn_engine, square, model, name):
    base = pixels(run(cn_engine, model))
    faint = pixels(run(cn_engine, model, [unit(square, name, weight=0.001)]))
    assert np.abs(faint - base).mean() < 1.0  # a unit that barely acts leaves the seed's picture


def test_the_memory_plan_keeps_room_for_the_units_controlnets(cn_engine, square):
    from app.runtime.weights import sixteen_bit_size

    entry = cn_engine.resolve_model(FLUX)
    folder = cn_engine.settings.models_dir / "controlnet"
    plain = validate_request(prompt=PROMPT, model=FLUX, width=SIZE, height=SIZE)
    one = plain.model_copy(update={"addons": (unit(square), unit(square, weight=0.5))})  # one file, counted once
    two = plain.model_copy(update={"addons": (unit(square), unit(square, "flux-depth"))})
    assert cn_engine.memory_plan(entry, plain).workload.addon_bytes == 0
    assert cn_engine.memory_plan(entry, one).workload.addon_bytes == sixteen_bit_size(folder / "flux-canny.safetensors")
    assert cn_engine.memory_plan(entry, two).workload.addon_bytes == sum(
        sixteen_bit_size(folder / f"{name}.safetensors") for name in ("flux-canny", "flux-depth"))
    assert any("with ControlNets of" in r for r in cn_engine.memory_plan(entry, two).reasons)
