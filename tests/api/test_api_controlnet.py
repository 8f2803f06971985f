"""sd-webui-controlnet as its clients use it: units in alwayson_scripts (webuiapi's ControlNetUnit.to_dict,
the extension's examples), its /controlnet routes, and the ControlNet entries of /png-info.

Over the shipped demo models and their canny ControlNet (models/controlnet), 64 px, 4 steps.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from fastapi.testclient import TestClient
from api_server import LAUNCH_MODES, LiveApi, api_settings, decode_png, png_b64, serve_mode
from PIL import Image, ImageDraw

from app.api import create_api
from app.generation.infotext import parse_infotext
from app.generation.model_hash import partial_hash
from app.settings import PROJECT_ROOT, Settings

SHIPPED_CONTROLNET = PROJECT_ROOT / "models" / "controlnet" / "demo-canny-flux.safetensors"
CN_NAME = "demo-canny-flux"


def circle(size: int = 64) -> Image.Image:
    """A black ring on white: canny finds its two edges."""
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), outline="black", width=6)
    return image


CIRCLE = png_b64(circle())
BODY = {"prompt": "a circle", "width": 64, "height": 64, "steps": 4, "seed": 1}


def webuiapi_unit(**more) -> dict:
    """What webuiapi's ControlNetUnit(image=..., module="canny", model=...).to_dict() sends."""
    return {"image": CIRCLE, "mask": None, "module": "canny", "model": CN_NAME, "weight": 1.0,
            "resize_mode": "Resize and Fill", "low_vram": False, "processor_res": 512, "threshold_a": 64,
            "threshold_b": 64, "guidance_start": 0.0, "guidance_end": 1.0, "control_mode": "Balanced",
            "pixel_perfect": False, "hr_option": "Both", "enabled": True, **more}


def with_units(*units, key: str = "ControlNet", **more) -> dict:
    return {**BODY, "alwayson_scripts": {key: {"args": list(units)}}, **more}


@pytest.fixture(scope="module")
def api_models_dir(tmp_path_factory):
    """The shipped demo models and the shipped canny ControlNet trained for the FLUX one."""
    assert SHIPPED_CONTROLNET.is_file(), f"{SHIPPED_CONTROLNET} is missing: train it with app/demo/train_controlnet.py"
    models = tmp_path_factory.mktemp("cn-api") / "models"
    (models / "controlnet").mkdir(parents=True)
    (models / "demo").symlink_to(PROJECT_ROOT / "models" / "demo", target_is_directory=True)
    shutil.copy(SHIPPED_CONTROLNET, models / "controlnet")
    return models


@dataclass
class Started:
    api: LiveApi
    first: httpx.Response  # the first request the server answered, a ControlNet one
    mode: str


@pytest.fixture(scope="module", params=LAUNCH_MODES)
def cn(request, api_models_dir, tmp_path_factory):
    """A server of each launch mode whose very first request is a ControlNet txt2img (no warm-up race)."""
    outputs = tmp_path_factory.mktemp("cn-outputs")
    served = serve_mode(request.param, api_settings(api_models_dir, outputs))
    client = httpx.Client(timeout=120)
    try:
        api = LiveApi(served.base_url, client, served.engine, outputs)
        yield Started(api, api.post("txt2img", with_units(webuiapi_unit())), request.param)
    finally:
        client.close()
        served.close()


def root_get(cn: Started, path: str, **kw) -> httpx.Response:
    return cn.api.client.get(f"{cn.api.base_url}{path}", **kw)


def root_post(cn: Started, path: str, body: dict) -> httpx.Response:
    return cn.api.client.post(f"{cn.api.base_url}{path}", json=body)


def generated(response: httpx.Response) -> tuple[list[Image.Image], dict]:
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    return [decode_png(b64) for b64 in body["images"]], json.loads(body["info"])


def unit_entries(info: dict) -> dict[str, str]:
    params = parse_infotext(info["infotexts"][0]).params
    return {k: v for k, v in params.items() if k.startswith("ControlNet")}


def detail_of(response: httpx.Response, status: int = 422) -> str:
    assert response.status_code == status, response.text[:500]
    return response.json()["detail"]


# -- units in alwayson_scripts ---------------------------------------------------------------------------


def test_the_first_request_is_a_webuiapi_unit_and_its_map_follows_the_image(cn):
    images, info = generated(cn.first)
    assert images[0].size == (64, 64)
    entry = unit_entries(info)["ControlNet 0"]
    assert "Module: canny" in entry and f"Model: {CN_NAME} [" in entry and "Resize Mode: Resize and Fill" in entry
    assert "Threshold A: 64" in entry
    assert len(images) == 2 and len(info["infotexts"]) == 1  # save_detected_map defaults to true, as in the extension
    assert set(np.unique(np.asarray(images[1].convert("L")))) <= {0, 255}  # an edge map


def test_save_detected_map_appends_one_image(cn):
    without, _ = generated(cn.api.post("txt2img", with_units(webuiapi_unit(save_detected_map=False))))
    with_map, _ = generated(cn.api.post("txt2img", with_units(webuiapi_unit(save_detected_map=True))))
    assert (len(without), len(with_map)) == (1, 2)
    assert with_map[1].size == (64, 64)
    assert with_map[0].tobytes() == without[0].tobytes()


def test_two_units_both_in_the_infotext(cn):
    second = webuiapi_unit(weight=0.5, guidance_end=0.5, control_mode=1, resize_mode=0, save_detected_map=False)
    _, info = generated(cn.api.post("txt2img", with_units(webuiapi_unit(save_detected_map=False), second)))
    entries = unit_entries(info)
    assert set(entries) == {"ControlNet 0", "ControlNet 1"}
    assert "Weight: 0.5" in entries["ControlNet 1"] and "Guidance End: 0.5" in entries["ControlNet 1"]
    assert "Control Mode: My prompt is more important" in entries["ControlNet 1"]
    assert "Resize Mode: Just Resize" in entries["ControlNet 1"]


def test_disabled_units_and_units_without_a_model_are_skipped(cn):
    body = with_units(webuiapi_unit(enabled=False), webuiapi_unit(model="None"), None)
    images, info = generated(cn.api.post("txt2img", body))
    assert len(images) == 1 and unit_entries(info) == {}
    assert "alwayson_scripts" not in " ".join(info["ignored_fields"])


@pytest.mark.parametrize("key", ["ControlNet", "controlnet", "CONTROLNET"])
def test_the_script_key_is_matched_case_blind(cn, key):
    _, info = generated(cn.api.post("txt2img", with_units(webuiapi_unit(save_detected_map=False), key=key)))
    assert "ControlNet 0" in unit_entries(info)


@pytest.mark.parametrize("mode", [2, "ControlNet is more important"])
def test_control_mode_controlnet_is_more_important(cn, mode):
    _, info = generated(cn.api.post("txt2img", with_units(webuiapi_unit(control_mode=mode))))
    assert "Control Mode: ControlNet is more important" in unit_entries(info)["ControlNet 0"]


def test_the_extensions_own_example_unit(cn):
    """scripts' example api_txt2img.py: "lowvram", a partial model name, module none on a ready map."""
    unit = {"enabled": True, "module": "none", "model": "canny", "weight": 1.0, "image": CIRCLE,
            "resize_mode": "Crop and Resize", "lowvram": False, "processor_res": 64, "threshold_a": 64,
            "threshold_b": 64, "guidance_start": 0.0, "guidance_end": 1.0, "control_mode": "Balanced",
            "pixel_perfect": False}
    _, info = generated(cn.api.post("txt2img", with_units(unit, key="controlnet")))
    assert f"Model: {CN_NAME} [" in unit_entries(info)["ControlNet 0"]
    assert info["ignored_fields"] == []


def test_img2img_unit_without_image_reads_the_init_image(cn):
    body = {**with_units(webuiapi_unit(image="", input_image=None)), "init_images": [CIRCLE],
            "denoising_strength": 0.5}
    images, info = generated(cn.api.post("img2img", body))
    assert images[0].size == (64, 64) and "ControlNet 0" in unit_entries(info)


def test_other_alwayson_scripts_are_listed_as_ignored(cn):
    body = with_units(webuiapi_unit(), key="controlnet")
    body["alwayson_scripts"]["ADetailer"] = {"args": [True]}
    _, info = generated(cn.api.post("txt2img", body))
    assert info["ignored_fields"] == ["alwayson_scripts.ADetailer"]


def test_a_hires_job_says_units_act_on_the_first_pass(cn):
    body = with_units(webuiapi_unit(save_detected_map=False), enable_hr=True, hr_scale=1.5, denoising_strength=0.3)
    images, info = generated(cn.api.post("txt2img", body))
    assert images[0].size == (96, 96)
    assert any("first pass only" in w for w in info["warnings"])


BAD_UNITS = [
    ({"image": "not base64!"}, "alwayson_scripts.ControlNet.args[0].image", "base64"),
    ({"image": {"image": CIRCLE, "mask": "@@"}}, "alwayson_scripts.ControlNet.args[0].image.mask", "base64"),
    ({"module": "no_such_module"}, "alwayson_scripts.ControlNet.args[0].module", "canny"),
    ({"weight": 3}, "alwayson_scripts.ControlNet.args[0].weight", "2"),
    ({"weight": "heavy"}, "alwayson_scripts.ControlNet.args[0].weight", "number"),
    ({"resize_mode": "Stretch"}, "alwayson_scripts.ControlNet.args[0].resize_mode", "Just Resize"),
    ({"control_mode": 7}, "alwayson_scripts.ControlNet.args[0].control_mode", "Balanced"),
    ({"guidance_start": 0.8, "guidance_end": 0.2}, "alwayson_scripts.ControlNet.args[0].guidance_start", "guidance_end"),
    ({"enabled": "yes"}, "alwayson_scripts.ControlNet.args[0].enabled", "true or false"),
]


@pytest.mark.parametrize("change, field, says", BAD_UNITS)
def test_a_bad_unit_is_422_naming_its_field(cn, change, field, says):
    detail = detail_of(cn.api.post("txt2img", with_units(webuiapi_unit(**change))))
    assert detail.startswith(f"{field}:") and says in detail, detail


def test_an_unknown_model_is_422_listing_the_models(cn):
    detail = detail_of(cn.api.post("txt2img", with_units(webuiapi_unit(), webuiapi_unit(model="control_v11p_sd15_depth"))))
    assert detail.startswith("alwayson_scripts.ControlNet.args[1].model:") and CN_NAME in detail, detail


def test_a_txt2img_unit_without_image_is_422(cn):
    detail = detail_of(cn.api.post("txt2img", with_units(webuiapi_unit(image=""))))
    assert detail.startswith("alwayson_scripts.ControlNet.args[0].image:"), detail


@pytest.mark.parametrize("scripts, field", [
    ({"controlnet": {"args": "unit"}}, "alwayson_scripts.controlnet.args"),
    ({"controlnet": {"args": [5]}}, "alwayson_scripts.controlnet.args[0]"),
    ({"controlnet": [1]}, "alwayson_scripts.controlnet"),
    ({"controlnet": {"args": []}, "ControlNet": {"args": []}}, "alwayson_scripts"),
])
def test_a_malformed_script_entry_is_422(cn, scripts, field):
    detail = detail_of(cn.api.post("txt2img", {**BODY, "alwayson_scripts": scripts}))
    assert detail.startswith(f"{field}:"), detail


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=12), st.sampled_from(["", CIRCLE, "None", CN_NAME, "canny", "Balanced"]))
anything = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.sampled_from(["image", "mask"]), scalars))
unit_fields = st.sampled_from(sorted(webuiapi_unit()) + ["input_image", "mask_image", "guidance", "union_control_type",
                                                          "save_detected_map", "advanced_weighting"])


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(unit_fields, anything, max_size=3))
def test_any_unit_is_answered_without_a_500(cn, changes):
    if cn.mode != "nowebui":
        pytest.skip("reading units is the same in every launch mode")
    body = with_units(webuiapi_unit(**{"save_detected_map": False, **changes}), steps=1)
    response = cn.api.post("txt2img", body)
    assert response.status_code in (200, 422), response.text[:500]
    if response.status_code == 422:
        assert response.json()["detail"].startswith("alwayson_scripts.ControlNet.args[0]"), response.text[:300]


# -- the /controlnet routes ------------------------------------------------------------------------------


def test_version_settings_and_model_list(cn):
    assert root_get(cn, "/controlnet/version").json() == {"version": 2}
    assert root_get(cn, "/controlnet/settings").json() == {"control_net_unit_count": 3}
    for update in ("true", "false"):
        models = root_get(cn, "/controlnet/model_list", params={"update": update}).json()["model_list"]
        assert models == [f"{CN_NAME} [{partial_hash(SHIPPED_CONTROLNET)}]"]  # as sd-webui-controlnet names it


def test_module_list_with_names_labels_and_sliders(cn):
    plain = root_get(cn, "/controlnet/module_list").json()
    assert plain["module_list"][0] == "none" and "canny" in plain["module_list"] and "lineart" in plain["module_list"]
    assert plain["module_detail"]["canny"] == {"model_free": False, "sliders": [
        {"name": "Resolution", "value": 512, "min": 64, "max": 2048, "step": 8},
        {"name": "Low Threshold", "value": 100, "min": 1, "max": 255, "step": 1},
        {"name": "High Threshold", "value": 200, "min": 1, "max": 255, "step": 1}]}
    aliased = root_get(cn, "/controlnet/module_list", params={"alias_names": "true"}).json()
    assert "lineart_realistic" in aliased["module_list"] and "lineart" not in aliased["module_list"]
    assert set(aliased["module_detail"]) == set(aliased["module_list"])


def test_control_types_list_modules_and_models_per_type(cn):
    types = root_get(cn, "/controlnet/control_types").json()["control_types"]
    assert list(types)[0] == "All" and {"Canny", "Depth", "Tile"} <= set(types)
    for kind in types.values():
        assert set(kind) == {"module_list", "model_list", "default_option", "default_model"}
        assert kind["model_list"][0] == "None"
    canny = types["Canny"]
    assert canny["default_option"] == "canny" and "canny" in canny["module_list"]
    assert canny["model_list"][1].startswith(CN_NAME) and canny["default_model"] == canny["model_list"][1]
    assert types["Depth"]["model_list"] == ["None"] and types["Depth"]["default_model"] == "None"
    assert types["All"]["default_option"] == "none" and len(types["All"]["model_list"]) == 2


def test_detect_canny_gives_an_edge_map_of_the_input_size(cn):
    source = png_b64(circle(96).resize((96, 80)))
    body = {"controlnet_module": "canny", "controlnet_input_images": [source], "controlnet_processor_res": 512,
            "controlnet_threshold_a": 100, "controlnet_threshold_b": 200}
    response = root_post(cn, "/controlnet/detect", body)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["info"] == "Success"
    (edges,) = [decode_png(b64) for b64 in response.json()["images"]]
    assert edges.size == (96, 80)
    assert set(np.unique(np.asarray(edges.convert("L")))) == {0, 255}
    webuiapi = {"controlnet_module": "canny", "controlnet_images": [f"data:image/png;base64,{source}"]}
    assert len(root_post(cn, "/controlnet/detect", webuiapi).json()["images"]) == 1


@pytest.mark.parametrize("body, field", [
    ({"controlnet_module": "no_such", "controlnet_input_images": [CIRCLE]}, "controlnet_module"),
    ({"controlnet_module": "depth_anything_v2", "controlnet_input_images": [CIRCLE]}, "controlnet_module"),
    ({"controlnet_module": "canny", "controlnet_input_images": ["%%%"]}, "controlnet_input_images[0]"),
    ({"controlnet_module": "canny"}, "controlnet_input_images"),
    ({"controlnet_module": "canny", "controlnet_input_images": "x"}, "controlnet_input_images"),
])
def test_detect_refuses_bad_input_with_422(cn, body, field):
    assert detail_of(root_post(cn, "/controlnet/detect", body)).startswith(f"{field}:")


def test_an_unknown_controlnet_path_is_the_apis_404(cn):
    response = root_get(cn, "/controlnet/nothing_here")
    assert response.status_code == 404 and response.json()["error"] == "NotFound"


class NoModelsEngine:
    """An engine stand-in: enough for routes that read no model."""

    current_job = None


def test_the_controlnet_routes_take_the_apis_auth(tmp_path):
    settings = Settings(models_dir=tmp_path, outputs_dir=tmp_path, settings_file=tmp_path / "s.json")
    client = TestClient(create_api(NoModelsEngine(), settings, auth="alice:s3cret"))
    for path in ("/controlnet/version", "/controlnet/module_list", "/controlnet/settings", "/controlnet/nothing"):
        refused = client.get(path)
        assert refused.status_code == 401 and refused.json()["error"] == "Unauthorized", path
    assert client.post("/controlnet/detect", json={}).status_code == 401
    assert client.get("/controlnet/version", auth=("alice", "s3cret")).json() == {"version": 2}
    detect = client.post("/controlnet/detect", json={"controlnet_module": "canny"}, auth=("alice", "s3cret"))
    assert detect.status_code == 422 and detect.json()["detail"].startswith("controlnet_input_images:")


# -- /png-info -------------------------------------------------------------------------------------------


def test_png_info_gives_the_units_as_the_extension_pastes_them(cn):
    image = cn.first.json()["images"][0]
    parameters = cn.api.post("png-info", {"image": image}).json()["parameters"]
    assert parameters["ControlNet 0 module"] == "canny"
    assert parameters["ControlNet 0 model"].startswith(f"{CN_NAME} [")
    assert parameters["ControlNet 0 resize_mode"] == "Resize and Fill"
    assert parameters["ControlNet 0 control_mode"] == "Balanced"
    assert parameters["ControlNet 0 weight"] == 1 and parameters["ControlNet 0 pixel_perfect"] is False
