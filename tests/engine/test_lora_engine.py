"""LoRAs through the engine on the random-weight demo models: they change the picture, weight 0 and no
LoRA give the base image exactly, sets switch without a reload, and a LoRA that does not fit says why.

The LoRA files are random, made here from the loaded transformer's own module shapes; that they teach
anything is the shipped demo LoRAs' part (tests/demo/test_demo_lora_content.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import FluxTransformer2DModel, SD3Transformer2DModel
from PIL import Image
from safetensors.torch import save_file

from app.engine.engine import Engine
from app.errors import InvalidRequest
from app.generation.infotext import read_image_metadata
from app.generation.model_hash import addnet_hash
from app.generation.request import validate_request
from app.settings import Settings

FLUX, SD3 = "easel-demo-flux", "easel-demo-sd3"
PROMPT = "a red circle on a blue background"


def random_lora(transformer, path, seed: int, *, targets=("attn.to_q", "attn.to_v"), scale=1.0, extra=False):
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for name, module in transformer.named_modules():
        if name.endswith(targets):
            tensors[f"transformer.{name}.lora_A.weight"] = torch.randn(4, module.in_features, generator=g) * scale
            tensors[f"transformer.{name}.lora_B.weight"] = torch.randn(module.out_features, 4, generator=g) * scale
    if extra:  # a key no module has: reported as skipped
        tensors["transformer.not_a_block.lora_A.weight"] = torch.zeros(4, 8)
        tensors["transformer.not_a_block.lora_B.weight"] = torch.zeros(8, 4)
    save_file(tensors, str(path))


@pytest.fixture(scope="module")
def lora_engine(demo_models_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-models")
    models = root / "models"
    models.mkdir()
    (models / "demo").symlink_to(demo_models_dir / "demo", target_is_directory=True)
    (models / "loras").mkdir()
    flux = FluxTransformer2DModel.from_pretrained(str(demo_models_dir / "demo" / FLUX / "transformer"))
    sd3 = SD3Transformer2DModel.from_pretrained(str(demo_models_dir / "demo" / SD3 / "transformer"))
    random_lora(flux, models / "loras" / "flux-a.safetensors", 1)
    random_lora(flux, models / "loras" / "flux-b.safetensors", 2, targets=("attn.to_k", "attn.to_out.0"))
    random_lora(flux, models / "loras" / "flux-partial.safetensors", 3, extra=True)
    random_lora(sd3, models / "loras" / "sd3-a.safetensors", 4)
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 320),
               "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(320, 4)},
              str(models / "loras" / "sdxl-style.safetensors"))
    engine = Engine(Settings(models_dir=models, outputs_dir=root / "out", device="cpu", max_loaded_models=2,
                             settings_file=root / "s.json"))
    yield engine, models
    engine.close()


def pixels(engine, prompt=PROMPT, model=FLUX, save=False, **fields):
    result = engine.generate(validate_request(prompt=prompt, model=model, width=64, height=64, steps=2, seed=5,
                                              save=save, **fields))
    return np.asarray(result.images[0]).astype(int), result


def test_a_lora_changes_the_picture_and_weight_0_or_none_gives_the_base_exactly(lora_engine):
    engine, _ = lora_engine
    base, _ = pixels(engine)
    with_lora, _ = pixels(engine, f"{PROMPT} <lora:flux-a:1>")
    assert np.abs(with_lora - base).mean() > 2
    weight_zero, _ = pixels(engine, f"{PROMPT} <lora:flux-a:0>")
    assert np.array_equal(weight_zero, base)
    after, _ = pixels(engine)  # the next job without LoRA gets the base weights back
    assert np.array_equal(after, base)


def test_the_tag_is_the_same_as_the_addon_and_is_not_read_by_the_encoders(lora_engine):
    engine, _ = lora_engine
    by_tag, _ = pixels(engine, f"{PROMPT} <lora:flux-a:0.8>")
    by_field, _ = pixels(engine, PROMPT, addons=[{"name": "flux-a", "weight": 0.8}])
    assert np.array_equal(by_tag, by_field)


def test_two_loras_at_once_both_act(lora_engine):
    engine, _ = lora_engine
    a, _ = pixels(engine, f"{PROMPT} <lora:flux-a:1>")
    b, _ = pixels(engine, f"{PROMPT} <lora:flux-b:1>")
    both, _ = pixels(engine, f"{PROMPT} <lora:flux-a:1> <lora:flux-b:1>")
    assert np.abs(both - a).mean() > 2 and np.abs(both - b).mean() > 2
    again, _ = pixels(engine, f"{PROMPT} <lora:flux-a:1>")  # switched back without a reload: same as before
    assert np.array_equal(again, a)


def test_infotext_keeps_the_tags_and_writes_a1111_lora_hashes(lora_engine):
    engine, models = lora_engine
    _, result = pixels(engine, f"{PROMPT} <lora:flux-a:0.5>", save=True)
    with Image.open(result.paths[0]) as saved:
        info = read_image_metadata(saved).infotext
    assert info.prompt == f"{PROMPT} <lora:flux-a:0.5>"
    expected = addnet_hash(models / "loras" / "flux-a.safetensors")[:12]
    assert info.params["Lora hashes"] == f"flux-a: {expected}"


def test_sd3_takes_its_own_lora_and_refuses_a_flux_one_before_queueing(lora_engine):
    engine, _ = lora_engine
    base, _ = pixels(engine, model=SD3)
    with_lora, _ = pixels(engine, f"{PROMPT} <lora:sd3-a:1>", model=SD3)
    assert np.abs(with_lora - base).mean() > 2
    with pytest.raises(InvalidRequest, match=r"addons\[0\]\.name: .*cannot take 'flux-a': it is a FLUX.1 LoRA"):
        engine.submit(validate_request(prompt=f"{PROMPT} <lora:flux-a>", model=SD3))


def test_unknown_names_bad_weights_and_files_that_fit_nothing_are_named(lora_engine):
    engine, _ = lora_engine
    with pytest.raises(InvalidRequest, match=r"addons\[0\]\.name: no LoRA named 'nope'.*available: flux-a"):
        engine.submit(validate_request(prompt=f"{PROMPT} <lora:nope:1>", model=FLUX))
    with pytest.raises(InvalidRequest, match=r"prompt: <lora:flux-a:lots>: the weight 'lots' is not a number"):
        engine.submit(validate_request(prompt=f"{PROMPT} <lora:flux-a:lots>", model=FLUX))
    with pytest.raises(InvalidRequest, match=r"addons\[0\]\.name: flux-schnell cannot take 'sdxl-style': it is a"):
        engine.submit(validate_request(prompt=f"{PROMPT} <lora:sdxl-style:1>", model=FLUX))


def test_keys_that_fit_no_layer_are_a_warning_with_the_count(lora_engine):
    engine, _ = lora_engine
    _, result = pixels(engine, f"{PROMPT} <lora:flux-partial:1>")
    assert any("2 of" in w and "keys are ignored" in w for w in result.warnings), result.warnings
