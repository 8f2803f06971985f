"""ControlNet preprocessors: the table as sd-webui-controlnet has it, the maps, and their sizing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.controlnet.annotators.base import LoadedAnnotators
from app.controlnet.preprocess import CONTROL_TYPES, list_preprocessors, preprocessor
from app.controlnet.preprocess_sizing import fit_control_map, pixel_perfect_resolution, resize_with_pad
from app.errors import InvalidRequest, MissingModelFiles


def square(size=128, lo=32, hi=96, value=255) -> Image.Image:
    a = np.zeros((size, size, 3), np.uint8)
    a[lo:hi, lo:hi] = value
    return Image.fromarray(a)


def run(name, image, tmp_path, resolution=None, a=None, b=None, **kw) -> np.ndarray:
    out = preprocessor(name).run(image, resolution=resolution, threshold_a=a, threshold_b=b, annotators_dir=tmp_path,
                                 **kw)
    assert out.mode == "RGB"
    return np.asarray(out)


# --- the table -------------------------------------------------------------------------------------------

def test_module_list_order_and_labels_are_the_extensions():
    names = [p.name for p in list_preprocessors()]
    assert names == ["none", "tile_resample", "recolor_luminance", "lineart_standard", "canny", "invert",
                     "recolor_intensity", "openpose", "lineart", "lineart_coarse", "depth_anything_v2",
                     "blur_gaussian"]
    assert preprocessor("invert").label == "invert (from white bg & black line)"
    assert preprocessor("lineart").label == "lineart_realistic"


def test_slider_specs_are_the_extensions():
    canny = preprocessor("canny").module_detail()["sliders"]
    assert canny == [
        {"name": "Resolution", "value": 512, "min": 64, "max": 2048, "step": 8},
        {"name": "Low Threshold", "value": 100, "min": 1, "max": 255, "step": 1},
        {"name": "High Threshold", "value": 200, "min": 1, "max": 255, "step": 1},
    ]
    blur = preprocessor("blur_gaussian").threshold_a
    assert (blur.label, blur.minimum, blur.maximum, blur.default) == ("Sigma", 0.01, 64.0, 9.0)
    tile = preprocessor("tile_resample")
    assert tile.resolution is None
    assert (tile.threshold_a.label, tile.threshold_a.minimum, tile.threshold_a.maximum, tile.threshold_a.default,
            tile.threshold_a.step) == ("Down Sampling Rate", 1.0, 8.0, 1.0, 0.01)
    gamma = preprocessor("recolor_luminance").threshold_a
    assert (gamma.label, gamma.minimum, gamma.maximum, gamma.default, gamma.step) == (
        "Gamma Correction", 0.1, 2.0, 1.0, 0.001)
    assert preprocessor("invert").sliders() == [] and preprocessor("none").sliders() == []


def test_weights_needed_only_by_detectors():
    need = {p.name for p in list_preprocessors() if p.needs_weights}
    assert need == {"depth_anything_v2", "lineart", "lineart_coarse", "openpose"}


def test_control_types_list_modules_and_default():
    assert CONTROL_TYPES["Canny"].modules == ("none", "canny", "invert")
    assert CONTROL_TYPES["Canny"].default_module == "canny"
    assert CONTROL_TYPES["Tile"].modules == ("none", "tile_resample", "blur_gaussian")
    assert CONTROL_TYPES["Recolor"].default_module == "recolor_luminance"
    assert CONTROL_TYPES["Lineart"].default_label == "lineart_standard (from white bg & black line)"
    assert CONTROL_TYPES["Depth"].default_module == "depth_anything_v2"
    assert CONTROL_TYPES["OpenPose"].default_module == "openpose"
    assert CONTROL_TYPES["All"].default_module == "none"
    assert CONTROL_TYPES["All"].modules == tuple(p.name for p in list_preprocessors())
    assert list(CONTROL_TYPES) == ["All", "Canny", "Depth", "Lineart", "OpenPose", "Recolor", "Tile"]


def test_names_any_case_and_aliases():
    assert preprocessor("CANNY").name == "canny"
    assert preprocessor("Lineart_Realistic").name == "lineart"
    assert preprocessor("invert (from white bg & black line)").name == "invert"


def test_unknown_module_lists_the_allowed_ones():
    with pytest.raises(InvalidRequest) as e:
        preprocessor("depth_midas")
    assert e.value.field == "module"
    assert "depth_midas" in e.value.message
    for name in ("none", "canny", "tile_resample", "blur_gaussian", "depth_anything_v2", "openpose"):
        assert name in e.value.message


# --- sizing ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size,target,mode,expected", [
    ((768, 512), (1024, 1024), "just-resize", 1024),      # max(1024/512, 1024/768) * 512
    ((768, 512), (1024, 1024), "crop-and-resize", 1024),
    ((768, 512), (1024, 1024), "resize-and-fill", 683),   # min(...) * 512 = 682.67
    ((1000, 600), (512, 768), "crop-and-resize", 768),    # 768/600 * 600
    ((1000, 600), (512, 768), "resize-and-fill", 307),    # 512/1000 * 600 = 307.2
    ((8, 4), (9, 100), "resize-and-fill", 4),             # 4.5 rounds half to even, as numpy does
])
def test_pixel_perfect_resolution(size, target, mode, expected):
    assert pixel_perfect_resolution(size, target[0], target[1], mode) == expected


def test_pixel_perfect_rejects_unknown_mode():
    with pytest.raises(InvalidRequest):
        pixel_perfect_resolution((512, 512), 512, 512, "stretch")


def test_resize_with_pad_pads_to_64_and_cuts_it_off():
    padded, remove_pad = resize_with_pad(np.zeros((100, 150, 3), np.uint8), 64)
    assert padded.shape == (64, 128, 3)  # 64 x 96, the width padded to 128
    assert remove_pad(padded).shape == (64, 96, 3)


def quarters_map() -> np.ndarray:
    """100 wide, 50 high: red left quarter, blue right quarter, green between."""
    m = np.zeros((50, 100, 3), np.uint8)
    m[:, :25] = (255, 0, 0)
    m[:, 25:75] = (0, 255, 0)
    m[:, 75:] = (0, 0, 255)
    return m


def test_fit_just_resize_stretches():
    out = np.asarray(fit_control_map(quarters_map(), 50, 100, "just-resize"))
    assert out.shape == (100, 50, 3)
    assert tuple(out[50, 5]) == (255, 0, 0) and tuple(out[50, 25]) == (0, 255, 0) and tuple(out[50, 45]) == (0, 0, 255)


def test_fit_crop_and_resize_covers_then_crops_centre():
    out = np.asarray(fit_control_map(quarters_map(), 100, 100, "crop-and-resize"))
    assert out.shape == (100, 100, 3)
    # scaled to 200 x 100, the middle 100 columns kept: only the green half is left
    assert (out == (0, 255, 0)).all()
    tall = np.asarray(fit_control_map(np.ascontiguousarray(quarters_map().transpose(1, 0, 2)), 100, 100,
                                      "crop-and-resize"))
    assert (tall == (0, 255, 0)).all()   # the same with the picture on its side: the middle rows kept


def test_fit_resize_and_fill_pads_with_the_border_median():
    m = np.full((50, 100, 3), 255, np.uint8)
    m[0, :] = (255, 0, 0)      # one red edge row: edge replication would pad red, the median pads white
    m[20:30, 40:60] = 0
    out = np.asarray(fit_control_map(m, 100, 100, "resize-and-fill"))
    assert out.shape == (100, 100, 3)
    assert (out[:25] == 255).all() and (out[75:] == 255).all()
    assert tuple(out[25, 50]) == (255, 0, 0)          # the map's first row lands at row 25
    assert (out[45:55, 40:60] == 0).all()


def test_fit_keeps_canny_edges_thin_when_upscaled(tmp_path):
    edges = run("canny", square(64, 16, 48), tmp_path, resolution=64)
    out = np.asarray(fit_control_map(edges, 256, 256, "just-resize"))
    assert set(np.unique(out)) <= {0, 255}
    white = int((out[:, :, 0] > 0).sum())
    perimeter = 4 * (48 - 16) * 4
    assert perimeter * 0.7 < white < perimeter * 2  # one-pixel lines, not 4 pixel wide bands


# --- weightless preprocessors ----------------------------------------------------------------------------

def test_canny_edges_on_the_square_border_only(tmp_path):
    out = run("canny", square(), tmp_path, resolution=128)
    assert out.shape == (128, 128, 3)
    edge = out[:, :, 0] > 0
    ys, xs = np.nonzero(edge)
    assert len(ys) > 4 * 60
    near_border = (np.minimum(np.abs(ys[:, None] - [31, 32, 95, 96]).min(1), 9) <= 1) | (
        np.minimum(np.abs(xs[:, None] - [31, 32, 95, 96]).min(1), 9) <= 1)
    assert near_border.all()
    assert not edge[36:92, 36:92].any()   # inside
    assert not edge[:28].any() and not edge[100:].any() and not edge[:, :28].any() and not edge[:, 100:].any()
    for side in (edge[31:33, 40:88], edge[95:97, 40:88], edge[40:88, 31:33], edge[40:88, 95:97]):
        assert side.any(axis=0 if side.shape[0] == 2 else 1).all()


def test_canny_thresholds_change_the_map(tmp_path):
    faint = square(value=30)   # a step of 30: Sobel L1 gradient 120, under the default high threshold 200
    assert run("canny", faint, tmp_path, resolution=128).max() == 0
    assert run("canny", faint, tmp_path, resolution=128, a=50, b=100).max() == 255
    # out of range falls back to the defaults, as the extension's bound check does
    assert run("canny", faint, tmp_path, resolution=128, a=-1, b=-1).max() == 0


def test_canny_runs_at_the_preprocessor_resolution(tmp_path):
    out = run("canny", Image.new("RGB", (150, 100)), tmp_path, resolution=64)
    assert out.shape == (64, 96, 3)
    assert run("canny", Image.new("RGB", (150, 100)), tmp_path).shape == (512, 768, 3)  # default 512


def test_blur_gaussian_blurs_more_with_sigma(tmp_path):
    sharp = square()
    soft = run("blur_gaussian", sharp, tmp_path, resolution=128, a=2)
    softer = run("blur_gaussian", sharp, tmp_path, resolution=128, a=8)
    assert soft.shape == (128, 128, 3)
    assert 0 < soft[64, 28, 0] < 255 and 0 < soft[64, 34, 0] < 255   # the edge spreads both ways
    assert softer[64, 20, 0] > soft[64, 20, 0]
    assert np.asarray(sharp).std() > soft.std() > softer.std()


def test_tile_resample_downsamples_by_the_rate(tmp_path):
    image = Image.new("RGB", (150, 100), (10, 20, 30))
    assert run("tile_resample", image, tmp_path, a=2).shape == (50, 75, 3)
    assert run("tile_resample", image, tmp_path, a=1.05).shape == (100, 150, 3)   # under 1.1: as it is
    assert run("tile_resample", image, tmp_path, a=None).shape == (100, 150, 3)


def test_invert_and_transparency_over_white(tmp_path):
    out = run("invert", square(), tmp_path)
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[64, 64]) == (0, 0, 0)
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert (run("invert", clear, tmp_path) == 0).all()   # transparent is white, inverted black


def test_recolor_gives_gray_and_gamma_darkens(tmp_path):
    image = Image.new("RGB", (16, 16), (128, 128, 128))
    plain = run("recolor_luminance", image, tmp_path)
    darker = run("recolor_luminance", image, tmp_path, a=2.0)
    assert (plain[:, :, 0] == plain[:, :, 1]).all() and (plain[:, :, 1] == plain[:, :, 2]).all()
    assert darker[0, 0, 0] < plain[0, 0, 0] - 40
    # the extension reads its RGB array as BGR: pure red gets the L of pure blue (32.3 -> 82 of 255)
    red = run("recolor_luminance", Image.new("RGB", (4, 4), (255, 0, 0)), tmp_path)
    assert abs(int(red[0, 0, 0]) - 82) <= 1
    assert run("recolor_intensity", Image.new("RGB", (4, 4), (200, 10, 60)), tmp_path)[0, 0, 0] in (199, 200)


def test_lineart_standard_turns_dark_lines_white(tmp_path):
    a = np.full((128, 128, 3), 255, np.uint8)
    a[60:63, :] = 0
    out = run("lineart_standard", Image.fromarray(a), tmp_path, resolution=128)
    assert out[61, 64, 0] >= 120 and out[20, 64, 0] == 0   # a line of median strength maps to 127


def test_none_passes_the_picture(tmp_path):
    assert (run("none", square(), tmp_path) == np.asarray(square())).all()


# --- detectors with weights ------------------------------------------------------------------------------

def test_missing_weights_name_the_folder(tmp_path):
    depth = preprocessor("depth_anything_v2")
    (tmp_path / "depth-anything-v2-small").mkdir()
    (tmp_path / "depth-anything-v2-small" / "config.json").write_text("{}")   # no model.safetensors
    missing = depth.missing_files(tmp_path)
    assert len(missing) == 1
    assert f"{tmp_path / 'depth-anything-v2-large'}/ (config.json, model.safetensors)" in missing[0]
    assert "depth-anything/Depth-Anything-V2-Large-hf" in missing[0]
    with pytest.raises(MissingModelFiles) as e:
        run("depth_anything_v2", square(), tmp_path)
    assert str(tmp_path / "depth-anything-v2-small") in str(e.value)
    assert "lineart/ (sk_model.safetensors or sk_model.pth)" in preprocessor("lineart").missing_files(tmp_path)[0]
    assert preprocessor("canny").missing_files(tmp_path) == []


def tiny_depth_anything(folder):
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            patch_size=14, image_size=518, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8)
    torch.manual_seed(0)
    DepthAnythingForDepthEstimation(config).save_pretrained(folder)


def test_depth_anything_v2_with_a_tiny_model(tmp_path):
    tiny_depth_anything(tmp_path / "depth-anything-v2-small")
    assert preprocessor("depth_anything_v2").missing_files(tmp_path) == []
    image = Image.fromarray(np.tile(np.linspace(0, 255, 150, dtype=np.uint8)[None, :, None], (100, 1, 3)))
    loaded = LoadedAnnotators()
    out = run("depth_anything_v2", image, tmp_path, resolution=64, loaded=loaded)
    assert out.shape == (64, 96, 3)
    assert (out[:, :, 0] == out[:, :, 2]).all()
    again = run("depth_anything_v2", image, tmp_path, resolution=64, loaded=loaded)
    assert len(loaded.models) == 1 and (again == out).all()
    # stretched to the full gray range over the map before its pad is cut: no pad at 128 x 64
    unpadded = run("depth_anything_v2", image.resize((128, 64)), tmp_path, resolution=64, loaded=loaded)
    assert unpadded.shape == (64, 128, 3)
    assert unpadded.min() == 0 and unpadded.max() >= 254


class NotTensors:
    """Pickled as a class reference: torch.load(weights_only=True) refuses to import it."""


def test_lineart_reads_pth_without_pickled_code_and_safetensors(tmp_path):
    import torch
    from safetensors.torch import save_file

    from app.controlnet.annotators.lineart import build_generator

    (tmp_path / "lineart").mkdir()
    torch.manual_seed(0)
    torch.save(build_generator().state_dict(), tmp_path / "lineart" / "sk_model.pth")
    save_file({k: v.contiguous() for k, v in build_generator().state_dict().items()},
              str(tmp_path / "lineart" / "sk_model2.safetensors"))
    out = run("lineart", Image.new("RGB", (150, 100), (200, 100, 50)), tmp_path, resolution=64)
    assert out.shape == (64, 96, 3)
    assert run("lineart_coarse", square(), tmp_path, resolution=64).shape == (64, 64, 3)

    torch.save({"x": NotTensors()}, tmp_path / "lineart" / "sk_model.pth")
    with pytest.raises(Exception, match="(?i)weights_only|unpickl|global"):
        run("lineart", square(), tmp_path, resolution=64)


def test_openpose_groups_and_draws_a_synthetic_person():
    from app.controlnet.annotators import openpose as op

    h = w = 200
    points = {1: (100, 40), 2: (100, 70), 3: (70, 70), 4: (60, 110), 6: (130, 70)}   # 1-based COCO parts
    yy, xx = np.mgrid[0:h, 0:w]
    heat = np.zeros((h, w, 19))
    for part, (x, y) in points.items():
        heat[:, :, part - 1] = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 3.0 ** 2))
    pafs = np.zeros((h, w, 38))
    for (a, b), (cx, cy) in zip(op.LIMBS, op.PAF_CHANNELS):
        if a in points and b in points:
            v = np.subtract(points[b], points[a]) / np.linalg.norm(np.subtract(points[b], points[a]))
            pafs[:, :, cx - 19], pafs[:, :, cy - 19] = v[0], v[1]
    candidate, subset = op.group_people(op.find_peaks(heat), pafs, h)
    assert len(subset) == 1 and subset[0][-1] == 5
    people = op.people_keypoints(candidate, subset, w, h)
    canvas = op.draw_bodies(people, h, w)
    assert tuple(canvas[40, 100]) == op.COLORS[0]                 # nose dot
    assert tuple(canvas[70, 100]) == op.COLORS[1]                 # neck dot
    assert tuple(canvas[70, 85]) == (153, 0, 0)                   # neck-right shoulder limb, 60 % red
    assert canvas[150:, :].max() == 0                            # nothing where there is no body


def test_openpose_runs_the_network_from_its_weights_file(tmp_path):
    import torch
    from safetensors.torch import save_file

    from app.controlnet.annotators.openpose_net import build_body_model

    (tmp_path / "openpose").mkdir()
    torch.manual_seed(0)
    weights = {k.split(".", 1)[1]: v for k, v in build_body_model().state_dict().items()}  # the file's key names
    save_file(weights, str(tmp_path / "openpose" / "body_pose_model.safetensors"))
    out = run("openpose", Image.new("RGB", (150, 100), (90, 120, 150)), tmp_path, resolution=64)
    assert out.shape == (64, 96, 3)
