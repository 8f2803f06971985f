"""The tiled upscale stage (A1111's SD upscale) as one job: the input upscaled exactly as it is, each tile
denoised by the job's model with the picture's seed, the tiles blended, progress naming the tile, and bad
stages refused before queueing. On the random-weight demo models."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from app.errors import InvalidRequest
from app.generation.infotext import parse_infotext
from app.generation.request import validate_request
from app.upscale.refine import plan_tiles

PROMPT = "a red circle on a blue background"
RAMP = 16  # the overlap: where a tile fades into its neighbour


def upscale_request(image, model="easel-demo-flux", steps=4, **stage):
    stage = {"kind": "tiled_upscale", "upscaler": "Lanczos", "tile_width": 64, "tile_height": 64, "overlap": 16,
             "strength": 0.5, **stage}
    return validate_request(task="img2img", image=image, strength=0, prompt=PROMPT, model=model, steps=steps,
                            seed=5, save=False, stages=[stage])


def picture(size=(100, 70)):
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(noise).filter(ImageFilter.GaussianBlur(3))


@pytest.mark.parametrize("model", ["easel-demo-flux", "easel-demo-sd3"])
def test_the_input_is_upscaled_as_it_is_and_every_tile_repainted(engine, model):
    source = picture()  # 100x70: not a multiple of 16, kept exactly
    result = engine.generate(upscale_request(source, model=model))
    out = np.asarray(result.images[0]).astype(int)
    lanczos = np.asarray(source.resize((200, 140), Image.Resampling.LANCZOS)).astype(int)
    assert result.images[0].size == (200, 140)
    for tile in plan_tiles(208, 144, 64, 16):  # the picture padded to 16 for the tiles, 4 x 3 of them
        inner = (slice(tile.y + RAMP, min(140, tile.y + tile.height) - RAMP),
                 slice(tile.x + RAMP, min(200, tile.x + tile.width) - RAMP))
        assert np.abs(out[inner] - lanczos[inner]).mean() > 2, f"tile at {tile.x},{tile.y} was not repainted"
    assert not any("unchanged" in w for w in result.warnings)
    params = parse_infotext(result.infotexts[0]).params
    assert params["SD upscale upscaler"] == "Lanczos" and params["SD upscale overlap"] == "16"
    assert params["SD upscale tile"] == "64x64" and params["Denoising strength"] == "0.5"
    assert params["Seed"] == "5"


def test_a_tile_is_the_img2img_of_that_part_with_the_picture_seed(engine):
    source = Image.new("RGB", (48, 32), (200, 60, 40))
    source.paste((30, 60, 200), (24, 0, 48, 32))
    result = engine.generate(upscale_request(source, tile_width=64, tile_height=64))  # 96x64: tiles at x 0, 32
    upscaled = source.resize((96, 64), Image.Resampling.LANCZOS)
    by_hand = engine.generate(validate_request(task="img2img", image=upscaled.crop((0, 0, 64, 64)), strength=0.5,
                                               prompt=PROMPT, model="easel-demo-flux", steps=4, seed=5, save=False))
    out = np.asarray(result.images[0]).astype(int)
    first = np.asarray(by_hand.images[0]).astype(int)
    assert np.abs(out[:, :32] - first[:, :32]).max() <= 1  # left of the overlap: the first tile alone


def test_after_txt2img_the_first_pass_is_upscaled_and_refined_in_tiles(engine):
    request = validate_request(prompt=PROMPT, model="easel-demo-sd3", width=64, height=64, steps=4, seed=9,
                               save=False, stages=[{"kind": "tiled_upscale", "scale": 2, "overlap": 16}])
    draft = engine.generate(validate_request(prompt=PROMPT, model="easel-demo-sd3", width=64, height=64, steps=4,
                                             seed=9, save=False)).images[0]
    result = engine.generate(request)
    assert result.images[0].size == (128, 128)
    lanczos = np.asarray(draft.resize((128, 128), Image.Resampling.LANCZOS)).astype(int)
    difference = np.abs(np.asarray(result.images[0]).astype(int) - lanczos).mean()
    assert 1 < difference < 60  # denoised again at 0.3, not a new picture
    assert parse_infotext(result.infotexts[0]).params["SD upscale tile"] == "64x64"  # the job's size


def test_upscaler_none_refines_the_picture_in_tiles_at_its_own_size(engine):
    result = engine.generate(upscale_request(picture((96, 64)), upscaler="None"))
    assert result.images[0].size == (96, 64)
    params = parse_infotext(result.infotexts[0]).params
    assert params["SD upscale upscaler"] == "None" and "SD upscale scale" not in params


def test_progress_counts_the_tiles_of_one_job(engine):
    job = engine.submit(upscale_request(Image.new("RGB", (48, 32), (90, 90, 90)), steps=2, strength=1.0))
    seen = [p for p in job.events() if p.total_steps and p.state == "running"]
    job.result()
    assert [p.where for p in seen] == [f"tiled upscale 2/2 · tile {t}/2 · step {s}/2" for t in (1, 2) for s in (1, 2)]
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_bad_tiled_upscales_are_refused_before_queueing_naming_the_field(engine, checker_image):
    with pytest.raises(InvalidRequest, match=r"stages\[0\]\.upscaler: no upscaler named 'Latent'.*Lanczos"):
        engine.submit(upscale_request(checker_image, upscaler="Latent"))
    with pytest.raises(InvalidRequest, match=r"stages\[0\]\.scale: 8.0 makes a 8192x8200 picture .*at most 8192"):
        engine.submit(upscale_request(Image.new("RGB", (1024, 1025)), scale=8))
    with pytest.raises(InvalidRequest, match=r"stages\[0\]\.tile_width: must be 0 \(the job's size\) or a multiple"):
        upscale_request(checker_image, tile_width=100)
    with pytest.raises(InvalidRequest, match=r"stages\[0\]: tiled upscale follows txt2img or img2img"):
        validate_request(task="inpaint", image=checker_image, mask=checker_image.convert("L"), prompt=PROMPT,
                         stages=[{"kind": "tiled_upscale"}])
    with pytest.raises(InvalidRequest, match=r"stages: the hires fix comes before the tiled upscale"):
        validate_request(prompt=PROMPT, stages=[{"kind": "tiled_upscale"}, {"kind": "hires"}])
