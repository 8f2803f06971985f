"""FLUX.1 Fill: a FLUX folder whose transformer takes 384 input channels (latents, masked-picture latents
and the mask) is recognised as Fill, inpaints and outpaints through FluxFillPipeline with its model
card's guidance 30, and refuses the tasks it has no pipeline for at submit. A random-weight Fill folder
of the demo model's size, built from the demo FLUX folder with the real loading code."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from app.catalog.identify import FILL_IN_CHANNELS
from app.demo.build import demo_root
from app.engine.engine import Engine
from app.errors import InvalidRequest
from app.generation.infotext import parse_infotext
from app.generation.outpaint import Outpaint, outpaint_fields
from app.generation.request import validate_request
from app.settings import Settings

FILL = "tiny-flux-fill"


@pytest.fixture(scope="module")
def fill_engine(demo_models_dir, tmp_path_factory):
    import torch
    from diffusers import FluxTransformer2DModel

    root = tmp_path_factory.mktemp("fill")
    folder = root / "models" / "diffusers" / FILL
    shutil.copytree(demo_root(demo_models_dir) / "easel-demo-flux", folder)
    config = json.loads((folder / "transformer" / "config.json").read_text())
    config.update(in_channels=FILL_IN_CHANNELS, out_channels=64, guidance_embeds=True)
    for key in [k for k in config if k.startswith("_")]:
        config.pop(key)
    torch.manual_seed(0)
    shutil.rmtree(folder / "transformer")
    FluxTransformer2DModel(**config).save_pretrained(folder / "transformer")
    index = json.loads((folder / "model_index.json").read_text())
    index = {k: v for k, v in index.items() if k not in ("feature_extractor", "image_encoder")}
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "FluxFillPipeline"}))
    (folder / "easel.json").unlink(missing_ok=True)
    engine = Engine(Settings(models_dir=root / "models", outputs_dir=root / "outputs", device="cpu",
                             demo_models=False, settings_file=root / "s.json", hf_cache=root / "no-hf"))
    yield engine
    engine.close()


def test_a_384_channel_flux_folder_is_listed_as_fill(fill_engine):
    entry = fill_engine.resolve_model(FILL)
    assert (entry.family, entry.variant, entry.ready) == ("flux", "flux-fill", True)


def test_fill_inpaints_with_guidance_30_and_keeps_the_unmasked_pixels(fill_engine):
    image = Image.new("RGB", (64, 64), (40, 60, 200))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    result = fill_engine.generate(validate_request(task="inpaint", prompt="a red square", model=FILL, image=image,
                                                   mask=mask, mask_blur=0, strength=1.0, steps=2, seed=4, save=False))
    out = np.asarray(result.images[0]).astype(int)
    assert out.shape == (64, 64, 3)
    assert np.array_equal(out[:16], np.asarray(image)[:16])  # outside the mask: the picture as it was
    assert np.abs(out[24:40, 24:40] - (40, 60, 200)).mean() > 5  # inside: repainted
    params = parse_infotext(result.infotexts[0]).params
    assert float(params["Distilled CFG Scale"]) == 30 and params["Model"] == FILL


def test_fill_outpaints(fill_engine):
    image = Image.new("RGB", (64, 64), (200, 40, 40))
    request = validate_request(task="inpaint", prompt="a field", model=FILL, strength=1.0, steps=2, seed=1, save=False,
                               **outpaint_fields(image, Outpaint(right=32)))
    out = np.asarray(fill_engine.generate(request).images[0])
    assert out.shape == (64, 96, 3) and np.array_equal(out[:, :64], np.asarray(image))


def test_tasks_fill_cannot_do_are_refused_at_submit(fill_engine):
    with pytest.raises(InvalidRequest, match=r"task: tiny-flux-fill \(flux-fill\) does inpaint only, not txt2img"):
        fill_engine.submit(validate_request(prompt="x", model=FILL, width=64, height=64))
    image, mask = Image.new("RGB", (64, 64)), Image.new("L", (64, 64), 255)
    with pytest.raises(InvalidRequest, match="inpaint_only_masked: .*'Only masked' is not available"):
        fill_engine.submit(validate_request(task="inpaint", prompt="x", model=FILL, image=image, mask=mask,
                                            inpaint_only_masked=True))
