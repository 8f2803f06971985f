"""Property-based fuzzing of the txt2img / img2img bodies: whatever JSON a client sends, the answer is a
200 or a 4xx naming a field, never a 500, and the server keeps serving.

Draws are bounded so that any draw valid enough to run is tiny: width/height are 64 or invalid, steps
1-2 or invalid, one image per batch or an invalid count. Examples are derandomized, so a failure
reproduces on every run.
"""

from __future__ import annotations

import json
import string

import pytest
from api_server import png_b64
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
anything = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=6), scalars, max_size=3))


def not_an_int_in(low: int, high: int):
    """JSON values that cannot be read as an integer in low..high (never null: null means the model's
    default, which may be large)."""
    return st.one_of(
        st.integers(max_value=low - 1), st.integers(min_value=high + 1),
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
        st.text(alphabet=string.ascii_letters + " -_", min_size=1, max_size=8),
        st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=4), scalars, max_size=2),
    )


def mostly(valid, invalid):
    """Valid seven times in eight, so that a good share of whole draws are valid and run."""
    return st.integers(0, 7).flatmap(lambda roll: invalid if roll == 0 else valid)


size = mostly(st.just(64), not_an_int_in(64, 4096))
steps = mostly(st.sampled_from([1, 2]), not_an_int_in(1, 150))
count = mostly(st.just(1), not_an_int_in(1, 16))
model = st.sampled_from(["easel-demo-flux", "easel-demo-sd3 [demo (random weights)]", "missing", 5, None])

unit = st.floats(0, 1)
common = {
    "prompt": mostly(st.text(max_size=40), anything),
    "negative_prompt": mostly(st.text(max_size=20), anything),
    "seed": mostly(st.integers(-1, 2**32 - 1), anything),
    "cfg_scale": mostly(st.floats(0, 30), anything),
    "distilled_cfg_scale": mostly(st.floats(0, 30), anything),
    "sampler_name": mostly(st.sampled_from(["Euler", "Euler a", "DPM++ 2M", ""]), anything),
    "scheduler": mostly(st.sampled_from(["Simple", "Karras"]), anything),
    "styles": mostly(st.lists(st.text(max_size=5), max_size=2), anything),
    "override_settings": mostly(st.fixed_dictionaries({"sd_model_checkpoint": model}), anything),
    "send_images": mostly(st.booleans(), anything),
    "denoising_strength": mostly(unit, anything),
    "enable_hr": mostly(st.booleans(), anything),
    "restore_faces": anything,
    "tiling": anything,
    "subseed": anything,
    "clip_skip": anything,
    "alwayson_scripts": anything,
    "not_an_a1111_field": anything,
}


def bodies(required: dict, optional: dict) -> st.SearchStrategy[dict]:
    sizes = {"width": size, "height": size, "steps": steps, "batch_size": count, "n_iter": count}
    return st.fixed_dictionaries({**sizes, **required}, optional={**common, **optional})


def image_b64(side: int) -> str:
    return png_b64(Image.new("RGB", (side, side), (120, 80, 200)))


IMAGE_64 = image_b64(64)
IMAGE_32_MASK = png_b64(Image.new("L", (32, 32), 255))
EMPTY_MASK = png_b64(Image.new("L", (64, 64), 0))
img2img_required = {
    "init_images": mostly(st.just([IMAGE_64]), st.one_of(
        st.lists(st.sampled_from([IMAGE_64, "xx", "", "data:image/png;base64,@"]), max_size=2), anything)),
}
img2img_optional = {
    "mask": mostly(st.sampled_from([IMAGE_64, EMPTY_MASK, IMAGE_32_MASK]), st.one_of(st.just("not base64"), anything)),
    "mask_blur": mostly(st.integers(0, 64), anything),
    "inpainting_fill": mostly(st.integers(0, 3), anything),
    "inpaint_full_res": mostly(st.booleans(), anything),
    "inpaint_full_res_padding": mostly(st.integers(0, 256), anything),
    "inpainting_mask_invert": mostly(st.integers(0, 1), anything),
    "resize_mode": mostly(st.integers(0, 3), anything),
    "include_init_images": mostly(st.booleans(), anything),
}


def check(response) -> None:
    detail = response.json().get("detail", "") if response.status_code != 200 else ""
    event(f"HTTP {response.status_code} {detail[:25]}")
    assert response.status_code < 500, response.text[:500]
    body = response.json()
    if response.status_code == 200:
        json.loads(body["info"])
        assert isinstance(body["images"], list)
    else:
        assert response.status_code in (400, 404, 409, 422), response.text[:500]
        assert isinstance(body["error"], str) and ":" in body["detail"], body


@SETTINGS
@given(body=bodies({}, {}))
def test_txt2img_never_500(live_api, body):
    check(live_api.post("txt2img", body))


@SETTINGS
@given(body=bodies(img2img_required, img2img_optional))
def test_img2img_never_500(live_api, body):
    check(live_api.post("img2img", body))


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode)))
def test_raw_bodies_never_500(live_api, raw):
    for path in ("txt2img", "img2img", "options", "extra-single-image", "png-info"):
        response = live_api.client.post(live_api.url(path), content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code < 500, (path, response.text[:300])


@pytest.mark.parametrize("path", ["txt2img", "img2img"])
def test_still_serving_after_fuzzing(live_api, tiny, path):
    body = tiny if path == "txt2img" else {**tiny, "init_images": [IMAGE_64]}
    assert live_api.post(path, body).status_code == 200
