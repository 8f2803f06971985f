"""Damaged, foreign and unreadable files are listed with a reason; the scan never stops on them."""

import os
import pickle

from tinyfiles import Trap, flux_bfl_keys, lora_keys, sdxl_keys, t5_keys, write_model, write_text

from app.catalog.entry import READY, UNREADABLE
from app.catalog.scan import scan_models


def _unreadable(scan):
    return {m.name: m.problems for m in scan.models if m.status == UNREADABLE}


def test_random_bytes_are_listed_as_unreadable_beside_the_good_model(comfy):
    (comfy / "diffusion_models" / "noise.safetensors").write_bytes(os.urandom(4096))
    scan = scan_models([comfy])
    assert scan.by_name("flux1-schnell").status == READY
    [problem] = _unreadable(scan)["noise"]
    assert problem.startswith("noise.safetensors: not a safetensors file")


def test_a_truncated_download_is_listed_as_truncated(comfy):
    path = write_model(comfy / "checkpoints" / "flux1-dev.safetensors", flux_bfl_keys(dev=True))
    path.write_bytes(path.read_bytes()[:-5])
    [problem] = _unreadable(scan_models([comfy]))["flux1-dev"]
    assert problem.startswith("flux1-dev.safetensors: truncated: header says")


def test_pickles_are_never_unpickled(tmp_path, comfy):
    marker = tmp_path / "unpickled"
    trap = pickle.dumps(Trap(marker))
    for name in ("old.ckpt", "weights.pt", "model.bin"):
        (comfy / "checkpoints").mkdir(exist_ok=True)
        (comfy / "checkpoints" / name).write_bytes(trap)
    (comfy / "upscale_models").mkdir()
    (comfy / "upscale_models" / "4x.pth").write_bytes(trap)
    (comfy / "loras").mkdir()
    (comfy / "loras" / "style.pt").write_bytes(trap)

    scan = scan_models([comfy])

    assert not marker.exists()
    assert _unreadable(scan) == {
        name: (f"{name}.{ext}: pickle file: Easel loads only .safetensors; convert it",)
        for name, ext in (("old", "ckpt"), ("weights", "pt"), ("model", "bin"))
    }
    assert scan.files_of_kind("upscaler") == scan.files_of_kind("lora") == []
    assert {f.path.name: f.reason.split(":")[0] for f in scan.unusable_files()} == {
        "4x.pth": "pickled code", "style.pt": "pickle file"}
    pickle.loads(trap)  # the trap works: this is what the scan must never do
    assert marker.exists()


def test_a_foreign_model_in_a_model_folder_says_what_it_is(tmp_path):
    write_model(tmp_path / "checkpoints" / "sd_xl_base_1.0.safetensors", sdxl_keys())
    [model] = scan_models([tmp_path]).models
    assert model.status == UNREADABLE
    assert "Stable Diffusion 1.x/2.x/XL" in model.problems[0]


def test_encoders_and_loras_in_a_model_folder_are_not_models(tmp_path):
    write_model(tmp_path / "checkpoints" / "t5xxl_fp16.safetensors", t5_keys())
    write_model(tmp_path / "checkpoints" / "style.safetensors", lora_keys())
    scan = scan_models([tmp_path])
    assert scan.models == []
    assert sorted(f.kind for f in scan.files) == ["lora", "t5xxl"]


def test_a_corrupt_gguf_file_is_listed_with_a_reason(comfy):
    write_text(comfy / "diffusion_models" / "flux1-dev-Q4_0.gguf", "GGUF....")
    [problem] = _unreadable(scan_models([comfy]))["flux1-dev-Q4_0"]
    assert problem.startswith("flux1-dev-Q4_0.gguf: not a readable GGUF file (")


def test_a_broken_link_is_listed_not_fatal(tmp_path, comfy):
    (comfy / "diffusion_models" / "gone.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    scan = scan_models([comfy])
    assert _unreadable(scan)["gone"] == (f"gone.safetensors: broken link to {tmp_path / 'elsewhere.safetensors'}",)
    assert scan.by_name("flux1-schnell").ready


def test_a_link_loop_does_not_hang(comfy):
    (comfy / "diffusion_models" / "loop").symlink_to(comfy / "diffusion_models")
    (comfy / "loop").symlink_to(comfy)
    assert [m.name for m in scan_models([comfy]).models] == ["flux1-schnell"]


def test_a_folder_without_permission_is_reported(comfy, monkeypatch):
    locked = comfy / "diffusion_models" / "locked"
    write_model(locked / "x.safetensors", flux_bfl_keys())
    real_scandir = os.scandir

    def scandir(path):  # chmod 000 does not stop root, so refuse the way the OS would
        if os.fspath(path) == os.fspath(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    scan = scan_models([comfy])
    assert scan.by_name("flux1-schnell").ready
    assert scan.errors == [f"cannot read folder {locked}: Permission denied"]
    assert "x" not in [m.name for m in scan.models]


def test_an_empty_or_absent_models_folder(tmp_path):
    (tmp_path / "models" / "diffusion_models").mkdir(parents=True)
    scan = scan_models([tmp_path / "models"])
    assert (scan.models, scan.files, scan.errors) == ([], [], [])
    scan = scan_models([tmp_path / "nowhere"])
    assert scan.models == [] and scan.errors == [f"models folder {tmp_path / 'nowhere'} does not exist"]


def test_a_tree_of_fifty_files_is_fully_listed(tmp_path, comfy):
    for i in range(20):
        write_model(comfy / "diffusion_models" / f"flux-{i:02d}.safetensors", flux_bfl_keys(dev=i % 2 == 0))
    for i in range(20):
        write_model(comfy / "loras" / f"lora-{i:02d}.safetensors", lora_keys())
    for i in range(6):
        write_text(comfy / "checkpoints" / f"old-{i}.ckpt")
    write_text(comfy / "checkpoints" / "put_checkpoints_here")
    scan = scan_models([comfy])
    assert len(scan.files) == 4 + 20 + 20 + 6
    assert sum(m.ready for m in scan.models) == 21
    assert sum(m.variant == "flux-dev" for m in scan.models) == 10
    assert len(scan.files_of_kind("lora")) == 20


def test_a_forge_nf4_file_is_named_and_what_to_use_instead_is_said(comfy):
    nf4 = {**flux_bfl_keys(dev=True, prefix="model.diffusion_model."),
           "model.diffusion_model.double_blocks.0.img_attn.qkv.weight": (4718592, 1),
           "model.diffusion_model.double_blocks.0.img_attn.qkv.weight.absmax": (147456,),
           "model.diffusion_model.double_blocks.0.img_attn.qkv.weight.quant_map": (16,),
           "model.diffusion_model.double_blocks.0.img_attn.qkv.weight.quant_state.bitsandbytes__nf4": (117,)}
    write_model(comfy / "diffusion_models" / "flux1-dev-bnb-nf4-v2.safetensors", nf4)
    [problem] = _unreadable(scan_models([comfy]))["flux1-dev-bnb-nf4-v2"]
    assert "bitsandbytes NF4" in problem and "GGUF Q4_K_S" in problem
