"""The command line as a user runs it: `python -m app models` and `python -m app generate`."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from app.generation.infotext import read_image_metadata

ROOT = Path(__file__).resolve().parent.parent


def run_app(*args, cwd=ROOT):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EASEL_SETTINGS_FILE": "/nonexistent/settings.json"}
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_models_lists_the_demo_models_with_status_and_plan(demo_models_dir):
    out = run_app("models", "--models-dir", demo_models_dir, "--device", "cpu")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    flux = next(line for line in lines if line.startswith("easel-demo-flux"))
    assert "demo (random weights)" in flux and "flux-schnell" in flux and "diffusers" in flux and "ready" in flux
    assert any(line.startswith("easel-demo-sd3") and "sd3.5" in line for line in lines)
    assert "easel-demo-flux: plan: fp32" in out.stdout


def test_generate_writes_pngs_and_prints_paths_and_infotexts(demo_models_dir, tmp_path):
    out = run_app("generate", "--prompt", "a red circle", "--models-dir", demo_models_dir, "--outputs-dir", tmp_path,
                  "--width", "128", "--height", "64", "--steps", "2", "--seed", "77", "--batch-size", "2",
                  "--device", "cpu")
    assert out.returncode == 0, out.stderr
    paths = [Path(line) for line in out.stdout.splitlines() if line.endswith(".png")]
    assert [p.name for p in paths] == ["00001-77.png", "00002-78.png"]
    assert "Seed: 77" in out.stdout and "Seed: 78" in out.stdout
    with Image.open(paths[1]) as im:
        assert im.size == (128, 64)
        assert read_image_metadata(im).infotext.params["Seed"] == "78"


def test_generate_with_the_hires_fix_writes_the_upscaled_picture(demo_models_dir, tmp_path):
    out = run_app("generate", "--prompt", "a red circle", "--models-dir", demo_models_dir, "--outputs-dir", tmp_path,
                  "--width", "64", "--height", "80", "--steps", "2", "--seed", "5", "--hires-scale", "2",
                  "--hires-denoise", "0.4", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    path = Path(next(line for line in out.stdout.splitlines() if line.endswith(".png")))
    with Image.open(path) as im:
        assert im.size == (128, 160)
        params = read_image_metadata(im).infotext.params
    assert (params["Size"], params["Hires upscale"], params["Denoising strength"]) == ("64x80", "2", "0.4")
    bad = run_app("generate", "--prompt", "x", "--models-dir", demo_models_dir, "--outputs-dir", tmp_path,
                  "--device", "cpu", "--hires-resize", "big")
    assert bad.returncode == 2 and "'big' is not WIDTHxHEIGHT" in bad.stderr and "Traceback" not in bad.stderr


def test_generate_inpaint_from_files(demo_models_dir, tmp_path):
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "in.png")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    mask.save(tmp_path / "mask.png")
    out = run_app("generate", "--prompt", "a blue square", "--image", tmp_path / "in.png", "--mask", tmp_path / "mask.png",
                  "--strength", "1", "--steps", "2", "--models-dir", demo_models_dir, "--outputs-dir", tmp_path / "out",
                  "--model", "easel-demo-sd3", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    path = Path(next(line for line in out.stdout.splitlines() if line.endswith(".png")))
    assert "inpaint-images" in str(path)
    with Image.open(path) as im:
        assert im.getpixel((2, 2)) == (200, 30, 30)  # far outside the mask: untouched


def test_bad_input_gets_a_message_and_exit_code_2_not_a_traceback(demo_models_dir, tmp_path):
    cases = [
        (["--width", "100"], "width: must be a multiple of 16"),
        (["--model", "nope"], "no model named 'nope'"),
        (["--image", "/etc/hostname"], "is not a readable image"),
        (["--lowvram", "--medvram"], "contradict"),
        (["--steps", "0"], "steps: 0 is out of range"),
    ]
    for extra, message in cases:
        out = run_app("generate", "--prompt", "x", "--models-dir", demo_models_dir, "--outputs-dir", tmp_path,
                      "--device", "cpu", *extra)
        assert out.returncode == 2, (extra, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr, (extra, out.stderr)


def test_generate_runs_the_extensions_as_the_web_ui_does(demo_models_dir, tmp_path):
    probe = tmp_path / "extensions" / "probe"
    probe.mkdir(parents=True)
    (probe / "extension.toml").write_text('name = "probe"\nversion = "1.0.0"\nrequires = ">=0.1"\n')
    (probe / "__init__.py").write_text(
        "import pluggy\nhookimpl = pluggy.HookimplMarker('easel')\n\n"
        "@hookimpl\ndef adjust_request(request):\n"
        "    return request.model_copy(update={'prompt': request.prompt + ', seen by probe'})\n")
    out = run_app("generate", "--prompt", "a red circle", "--models-dir", demo_models_dir, "--outputs-dir",
                  tmp_path / "out", "--extensions-dir", tmp_path / "extensions", "--width", "64", "--height", "64",
                  "--steps", "1", "--seed", "3", "--device", "cpu")
    assert out.returncode == 0, out.stderr
    (path,) = [Path(line) for line in out.stdout.splitlines() if line.endswith(".png")]
    with Image.open(path) as im:
        assert read_image_metadata(im).infotext.prompt == "a red circle, seen by probe"


def test_generate_upscales_an_image_in_tiles_and_outpaints_one(demo_models_dir, tmp_path):
    source = Image.new("RGB", (50, 40), (200, 30, 30))
    source.save(tmp_path / "in.png")
    common = ("--prompt", "a red field", "--image", tmp_path / "in.png", "--steps", "2", "--models-dir",
              demo_models_dir, "--outputs-dir", tmp_path / "out", "--device", "cpu")
    out = run_app("generate", *common, "--upscale", "2", "--upscale-tile", "64", "--upscale-overlap", "16",
                  "--upscale-denoise", "0.5")
    assert out.returncode == 0, out.stderr
    assert "tiled upscale 2/2 · tile 4/4" in out.stderr
    path = Path(next(line for line in out.stdout.splitlines() if line.endswith(".png")))
    with Image.open(path) as im:
        assert im.size == (100, 80)  # the input's own size twice
        assert read_image_metadata(im).infotext.params["SD upscale tile"] == "64x64"
    out = run_app("generate", *common, "--outpaint", "right:64", "--strength", "0.9")
    assert out.returncode == 0, out.stderr
    path = Path(next(line for line in out.stdout.splitlines() if line.endswith(".png")))
    with Image.open(path) as im:
        assert im.size == (128, 64)
        assert np.array_equal(np.asarray(im.convert("RGB"))[:40, :50], np.asarray(source))
    bad = run_app("generate", *common, "--outpaint", "sideways:64")
    assert bad.returncode == 2 and "'sideways' is not a direction" in bad.stderr and "Traceback" not in bad.stderr


def test_generate_with_a_controlnet_unit_puts_the_square_where_its_edges_are(tmp_path):
    import shutil

    from app.demo.shapes import ShapeSpec, draw_at, shape_centroid

    models = tmp_path / "models"
    (models / "controlnet").mkdir(parents=True)
    (models / "demo").symlink_to(ROOT / "models" / "demo", target_is_directory=True)
    shutil.copy(ROOT / "models" / "controlnet" / "demo-canny-flux.safetensors", models / "controlnet")
    spec = ShapeSpec("square", "red", "blue")
    draw_at(spec, 128, 0.2, 0.5, 0.18).save(tmp_path / "left.png")
    common = ("--prompt", spec.caption, "--model", "easel-demo-shapes-flux", "--seed", "3", "--models-dir", models,
              "--outputs-dir", tmp_path / "out", "--device", "cpu", "--no-demo")
    out = run_app("generate", *common, "--controlnet",
                  f"model=demo-canny-flux,image={tmp_path / 'left.png'},module=canny,pixel_perfect=true,"
                  "save_detected_map=true")
    assert out.returncode == 0, out.stderr
    path = Path(next(line for line in out.stdout.splitlines() if line.endswith(".png") and "detected" not in line))
    with Image.open(path) as im:
        assert shape_centroid(im.convert("RGB"), spec)[0] < 1 / 3  # the caption alone puts it in the middle
        unit = read_image_metadata(im).infotext.params["ControlNet 0"]
        assert unit.startswith("Module: canny, Model: demo-canny-flux [")
    assert "detected map 0: " in out.stdout and "controlnet-images" in out.stdout
    bad = run_app("generate", *common, "--controlnet", "model=demo-canny-flux,weight=lots,image=x.png")
    assert bad.returncode == 2 and "controlnet[0].image" in bad.stderr and "Traceback" not in bad.stderr


def test_generate_with_the_first_block_cache_flag_writes_its_threshold(demo_models_dir, tmp_path):
    common = ("generate", "--prompt", "a red circle", "--models-dir", demo_models_dir, "--outputs-dir", tmp_path,
              "--width", "64", "--height", "64", "--seed", "5", "--device", "cpu", "--first-block-cache", "0.1")
    many = run_app(*common, "--steps", "10")
    assert many.returncode == 0, many.stderr
    assert "First block cache: 0.1" in many.stdout
    few = run_app(*common, "--steps", "4")  # too few steps for it to pay
    assert few.returncode == 0 and "First block cache" not in few.stdout


def test_an_attention_kernel_this_machine_cannot_run_is_a_message_not_a_traceback(demo_models_dir, tmp_path):
    out = run_app("generate", "--prompt", "a red circle", "--models-dir", demo_models_dir, "--outputs-dir", tmp_path,
                  "--width", "64", "--height", "64", "--steps", "1", "--device", "cpu", "--attention", "flash")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "--attention flash runs on NVIDIA GPUs only" in out.stderr + out.stdout
