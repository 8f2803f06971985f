"""End to end through the engine on both demo families: sizes, files, infotext, seeds, img2img, inpaint."""

import numpy as np
import pytest
from PIL import Image

from app.errors import InvalidRequest, ModelNotFound
from app.generation.infotext import parse_infotext, read_image_metadata
from app.generation.request import validate_request

FAMILIES = ["easel-demo-flux", "easel-demo-sd3"]


def pixels(im):
    return np.asarray(im.convert("RGB"), dtype=np.int16)


@pytest.mark.parametrize("model", FAMILIES)
def test_txt2img_writes_png_with_infotext(engine, model):
    req = validate_request(prompt="a red circle on a blue background", model=model, width=96, height=64,
                           steps=3, seed=1234)
    result = engine.generate(req, timeout=120)
    assert len(result.images) == 1 and result.images[0].size == (96, 64)
    path = result.paths[0]
    assert path.exists() and path.suffix == ".png" and "txt2img-images" in str(path)
    with Image.open(path) as saved:
        meta = read_image_metadata(saved)
        assert saved.size == (96, 64)
    info = meta.infotext
    assert info.prompt == "a red circle on a blue background"
    assert info.params["Seed"] == "1234" and info.params["Steps"] == "3" and info.params["Size"] == "96x64"
    assert info.params["Model"] == model
    assert len(info.params["Model hash"]) == 10
    assert info.params["Model type"] == "demo (random weights)"
    assert info.params["Version"].startswith("easel ")
    assert parse_infotext(result.infotexts[0]) == info


@pytest.mark.parametrize("model", FAMILIES)
def test_img2img_and_inpaint_give_the_requested_size(engine, model, checker_image):
    mask = Image.new("L", checker_image.size, 0)
    mask.paste(255, (32, 32, 96, 96))
    for task, extra in (("img2img", {}), ("inpaint", {"mask": mask})):
        req = validate_request(task=task, prompt="a cat", model=model, image=checker_image, strength=0.6,
                               steps=4, seed=7, **extra)
        result = engine.generate(req, timeout=120)
        assert result.images[0].size == (128, 128)
        info = parse_infotext(result.infotexts[0])
        assert info.params["Denoising strength"] == "0.6"
        assert f"{task}-images" in str(result.paths[0])


@pytest.mark.parametrize("model", FAMILIES)
def test_same_seed_same_pixels_whatever_the_batch_position(engine, model):
    base = dict(prompt="a tree", model=model, width=64, height=64, steps=2, save=False)
    batch = engine.generate(validate_request(seed=500, batch_size=3, **base), timeout=120)
    assert batch.seeds == [500, 501, 502]
    single = engine.generate(validate_request(seed=501, **base), timeout=120)
    again = engine.generate(validate_request(seed=501, **base), timeout=120)
    assert np.array_equal(pixels(single.images[0]), pixels(again.images[0]))
    # the same seed in a batch: the same picture (batched matmuls may differ in the last bit)
    assert np.abs(pixels(batch.images[1]) - pixels(single.images[0])).max() <= 2
    assert np.abs(pixels(batch.images[0]) - pixels(batch.images[1])).mean() > 1  # other seeds, other pictures


def test_random_seed_is_reported_and_reproduces(engine):
    base = dict(prompt="a house", model="easel-demo-flux", width=64, height=64, steps=2, save=False)
    first = engine.generate(validate_request(seed=-1, **base), timeout=60)
    seed = first.seeds[0]
    assert 0 <= seed < 2**32
    again = engine.generate(validate_request(seed=seed, **base), timeout=60)
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))


def test_batch_count_and_size_make_every_image_with_consecutive_seeds(engine):
    req = validate_request(prompt="a dog", model="easel-demo-sd3", width=64, height=64, steps=2, seed=10,
                           batch_size=2, batch_count=2)
    result = engine.generate(req, timeout=120)
    assert result.seeds == [10, 11, 12, 13]
    assert len({p.name for p in result.paths}) == 4 and all(p.exists() for p in result.paths)


@pytest.mark.parametrize("model", FAMILIES)
def test_img2img_strength_zero_returns_the_input(engine, model, checker_image):
    req = validate_request(task="img2img", prompt="anything", model=model, image=checker_image, strength=0.0,
                           steps=4, save=False)
    result = engine.generate(req, timeout=60)
    assert np.array_equal(pixels(result.images[0]), pixels(checker_image))


@pytest.mark.parametrize("model", FAMILIES)
def test_inpaint_leaves_unmasked_pixels_unchanged(engine, model, checker_image):
    mask = Image.new("L", checker_image.size, 0)
    mask.paste(255, (40, 40, 88, 88))
    req = validate_request(task="inpaint", prompt="a blue square", model=model, image=checker_image, mask=mask,
                           strength=1.0, steps=3, mask_blur=4, seed=3, save=False)
    out = pixels(engine.generate(req, timeout=60).images[0])
    src = pixels(checker_image)
    outside = np.ones(src.shape[:2], bool)
    outside[40 - 12:88 + 12, 40 - 12:88 + 12] = False  # the mask plus its blurred edge
    assert np.array_equal(out[outside], src[outside])
    inside = np.zeros(src.shape[:2], bool)
    inside[48:80, 48:80] = True
    assert np.abs(out[inside] - src[inside]).mean() > 10  # the masked area was repainted


def test_inpaint_accepts_rgba_painted_layer_as_mask(engine, checker_image):
    layer = Image.new("RGBA", checker_image.size, (0, 0, 0, 0))
    layer.paste((255, 255, 255, 255), (0, 0, 64, 128))
    req = validate_request(task="inpaint", prompt="x", model="easel-demo-flux", image=checker_image, mask=layer,
                           strength=1.0, steps=2, mask_blur=0, seed=3, save=False)
    out = pixels(engine.generate(req, timeout=60).images[0])
    src = pixels(checker_image)
    assert np.array_equal(out[:, 72:], src[:, 72:])
    assert np.abs(out[:, :56] - src[:, :56]).mean() > 10


def test_long_prompt_is_accepted_and_dropped_clip_tokens_are_reported(engine):
    prompt = " ".join(["a small red circle on a blue background"] * 15)
    result = engine.generate(validate_request(prompt=prompt, model="easel-demo-flux", width=64, height=64, steps=1,
                                              save=False), timeout=60)
    assert result.clip_tokens > 75
    assert result.clip_tokens_dropped == result.clip_tokens - 75
    assert any("dropped" in w for w in result.warnings)


def test_unknown_model_names_the_available_ones(engine):
    with pytest.raises(ModelNotFound) as err:
        engine.submit(validate_request(prompt="x", model="no-such-model"))
    assert "easel-demo-flux" in str(err.value)


def test_size_beyond_the_model_limit_fails_clearly_and_the_worker_keeps_serving(engine):
    job = engine.submit(validate_request(prompt="x", model="easel-demo-sd3", width=4096, height=64, steps=1))
    with pytest.raises(InvalidRequest) as err:
        job.result(timeout=60)
    assert "width" in str(err.value) and "2048" in str(err.value)
    ok = engine.generate(validate_request(prompt="x", model="easel-demo-sd3", width=64, height=64, steps=1,
                                          save=False), timeout=60)
    assert ok.images[0].size == (64, 64)


def test_sd3_negative_prompt_is_recorded_and_changes_the_image(engine):
    base = dict(prompt="a cat", model="easel-demo-sd3", width=64, height=64, steps=2, seed=9, cfg_scale=5.0, save=False)
    plain = engine.generate(validate_request(**base), timeout=60)
    negative = engine.generate(validate_request(negative_prompt="blurry, dark", **base), timeout=60)
    assert parse_infotext(negative.infotexts[0]).negative_prompt == "blurry, dark"
    assert np.abs(pixels(plain.images[0]) - pixels(negative.images[0])).mean() > 0.5
