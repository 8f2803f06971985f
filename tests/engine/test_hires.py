"""Hires fix as a stage of one job, on the random-weight demo models: the larger picture at the size
A1111 computes, the infotext keys A1111 writes, the first pass kept when asked, progress naming the
stage, and bad stages refused before queueing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.errors import InvalidRequest
from app.generation.infotext import parse_infotext
from app.generation.request import validate_request

FLUX, SD3 = "easel-demo-flux", "easel-demo-sd3"
PROMPT = "a red circle on a blue background"


def hires_request(model=FLUX, width=64, height=64, save=False, **stage):
    return validate_request(prompt=PROMPT, model=model, width=width, height=height, steps=2, seed=11, save=save,
                            stages=[{"kind": "hires", **stage}])


@pytest.mark.parametrize("model", [FLUX, SD3])
@pytest.mark.parametrize("upscaler", ["Lanczos", "Latent", "Latent (nearest-exact)"])
def test_scale_2_makes_the_picture_twice_as_large_and_says_so_in_the_infotext(engine, model, upscaler):
    result = engine.generate(hires_request(model, upscaler=upscaler, scale=2, strength=0.5))
    assert result.images[0].size == (128, 128)
    params = parse_infotext(result.infotexts[0]).params
    assert params["Size"] == "64x64"  # the first pass's, as A1111 writes it
    assert float(params["Hires upscale"]) == 2 and params["Hires upscaler"] == upscaler
    assert float(params["Denoising strength"]) == 0.5


@pytest.mark.parametrize(("resize", "size"), [((160, 0), (160, 112)), ((0, 128), (192, 128)), ((96, 160), (96, 160))])
def test_resize_to_keeps_the_aspect_or_covers_then_crops_snapped_to_16(engine, resize, size):
    result = engine.generate(hires_request(width=96, height=64 if resize != (96, 160) else 96, resize_x=resize[0],
                                           resize_y=resize[1], upscaler="Lanczos"))
    assert result.images[0].size == size
    assert parse_infotext(result.infotexts[0]).params["Hires resize"] == f"{size[0]}x{size[1]}"


def test_the_hires_pass_changes_the_upscaled_draft_and_strength_0_keeps_it(engine):
    draft = engine.generate(validate_request(prompt=PROMPT, model=FLUX, width=64, height=64, steps=2, seed=11,
                                             save=False)).images[0]
    upscaled = np.asarray(draft.resize((128, 128), Image.Resampling.LANCZOS)).astype(int)
    kept = np.asarray(engine.generate(hires_request(upscaler="Lanczos", strength=0)).images[0]).astype(int)
    assert np.array_equal(kept, upscaled)
    redone = np.asarray(engine.generate(hires_request(upscaler="Lanczos", strength=0.6)).images[0]).astype(int)
    assert np.abs(redone - upscaled).mean() > 2


def test_hires_prompt_steps_and_cfg_are_the_second_pass_own(engine):
    result = engine.generate(hires_request(SD3, upscaler="Lanczos", steps=3, cfg_scale=2.0,
                                           prompt="a yellow square on a black background"))
    params = parse_infotext(result.infotexts[0]).params
    assert params["Hires steps"] == "3" and float(params["Hires CFG Scale"]) == 2
    assert params["Hires prompt"] == "a yellow square on a black background"
    assert parse_infotext(result.infotexts[0]).prompt == PROMPT


def test_save_first_pass_keeps_the_draft_beside_the_final_picture(engine):
    result = engine.generate(hires_request(upscaler="Lanczos", save=True, save_first_pass=True))
    final = result.paths[0]
    drafts = [p for p in final.parent.glob("*-before-highres-fix.png")
              if parse_infotext(Image.open(p).info["parameters"]).params["Seed"] == "11"]
    assert drafts and Image.open(drafts[-1]).size == (64, 64)
    assert Image.open(final).size == (128, 128)
    assert "Hires upscale" not in Image.open(drafts[-1]).info["parameters"]


def test_progress_names_the_pass(engine):
    job = engine.submit(hires_request(upscaler="Lanczos"))
    seen = [p for p in job.events() if p.total_steps and p.state == "running"]
    job.result()
    assert {(p.stage, p.stage_index, p.total_stages) for p in seen} == {("first pass", 0, 2), ("hires fix", 1, 2)}
    assert [p.where for p in seen] == ["first pass 1/2 · step 1/2", "first pass 1/2 · step 2/2",
                                      "hires fix 2/2 · step 1/2", "hires fix 2/2 · step 2/2"]
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_bad_stages_are_refused_before_queueing_naming_the_field(engine, checker_image):
    with pytest.raises(InvalidRequest, match=r"stages\[0\]\.upscaler: no upscaler named 'ESRGAN_9x'.*Latent.*Lanczos"):
        engine.submit(hires_request(upscaler="ESRGAN_9x"))
    with pytest.raises(InvalidRequest, match=r"stages\[0\]\.scale: 9.0 is out of range|stages\[0\]\.scale"):
        hires_request(scale=9)
    with pytest.raises(InvalidRequest, match=r"stages\[0\]: hires fix follows a txt2img first pass"):
        validate_request(task="img2img", image=checker_image, prompt=PROMPT, stages=[{"kind": "hires"}])
    with pytest.raises(InvalidRequest, match=r"stages\[0\]\.denoise: is not a request field"):
        validate_request(prompt=PROMPT, stages=[{"kind": "hires", "denoise": 0.5}])
