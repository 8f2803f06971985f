"""Training the shapes demo models end to end with the smoke config, and the training/inference contract.

The smoke run trains every stage for a handful of steps (tens of seconds on 2 cores), saves both
folders and evaluates them, so what is checked here is the path a full run takes, not picture quality.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from app.demo.shapes import CAPTIONS
from app.demo.train import train_all
from app.demo.train_flow import encode_captions, flux_predict, sd3_predict
from app.demo.train_models import MAX_SEQUENCE_LENGTH, build_flux_pipeline, build_sd3_pipeline, build_vae

EXPECTED_META = {
    "flux": {"name": "easel-demo-shapes-flux", "label": "Easel demo · shapes (FLUX)", "family": "flux",
             "variant": "flux-schnell"},
    "sd3": {"name": "easel-demo-shapes-sd3", "label": "Easel demo · shapes (SD3.5)", "family": "sd3",
            "variant": "sd3.5-large"},
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    report = train_all(out, "smoke", "cpu", seed=0, log=lines.append)
    return out, report, lines


def _mean(values):
    return sum(values) / len(values)


@pytest.mark.parametrize("stage", ["vae", "flux", "sd3"])
def test_loss_goes_down(smoke, stage):
    _, report, _ = smoke
    losses = report["stages"][stage]["losses"]
    assert len(losses) == report["stages"][stage]["steps"] >= 20
    assert all(np.isfinite(losses))
    assert _mean(losses[-5:]) < 0.95 * _mean(losses[:5])


def test_progress_lines_name_step_loss_and_seconds(smoke):
    _, _, lines = smoke
    for stage in ("vae", "flux", "sd3"):
        progress = [line for line in lines if line.startswith(f"[{stage}] step ")]
        assert progress, stage
        assert all(" loss " in line and line.rstrip().endswith("s") for line in progress)
    assert any("Colour adherence" in line for line in lines)


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_easel_json_describes_the_model(smoke, family):
    out, report, _ = smoke
    folder = out / EXPECTED_META[family]["name"]
    meta = json.loads((folder / "easel.json").read_text())
    assert {k: meta[k] for k in EXPECTED_META[family]} == EXPECTED_META[family]
    assert meta["demo"] is True
    assert meta["max_sequence_length"] == MAX_SEQUENCE_LENGTH
    defaults = meta["defaults"]
    assert set(defaults) == {"steps", "width", "height", "cfg_scale"}
    assert defaults["width"] == defaults["height"] == max(report["sizes"])
    if family == "flux":
        assert defaults["steps"] == 4 and defaults["cfg_scale"] == 1.0
    else:
        assert defaults["cfg_scale"] > 1.0  # true CFG on by default


def test_folders_are_fp16_self_contained_small_and_have_no_leftovers(smoke):
    out, _, _ = smoke
    names = sorted(p.name for p in out.iterdir())
    assert names == ["easel-demo-shapes-flux", "easel-demo-shapes-sd3"]  # no temporary folders left
    total = 0
    for name in names:
        folder = out / name
        files = list(folder.rglob("*.safetensors"))
        assert files
        for f in files:
            with safe_open(str(f), "pt") as st:
                assert {st.get_tensor(k).dtype for k in st.keys()} == {torch.float16}, f
        total += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        report = json.loads((folder / "training_report.json").read_text())
        assert report["model"]["evaluation"]["64"]["pictures"] > 0
    assert total <= 30e6


def test_flux_folder_loads_and_generates(smoke):
    from diffusers import FluxPipeline

    out, _, _ = smoke
    pipe = FluxPipeline.from_pretrained(str(out / "easel-demo-shapes-flux"), local_files_only=True,
                                        dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red circle on a blue background", height=64, width=64, num_inference_steps=4,
                 guidance_scale=0.0, max_sequence_length=MAX_SEQUENCE_LENGTH,
                 generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (64, 64)
    assert np.asarray(image).std() > 0


def test_sd3_folder_loads_and_generates_with_true_cfg(smoke):
    from diffusers import StableDiffusion3Pipeline

    out, _, _ = smoke
    pipe = StableDiffusion3Pipeline.from_pretrained(str(out / "easel-demo-shapes-sd3"), local_files_only=True,
                                                    dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)

    def run(negative: str):
        return np.asarray(pipe("a red circle on a blue background", negative_prompt=negative, height=64, width=64,
                               num_inference_steps=4, guidance_scale=4.0, max_sequence_length=MAX_SEQUENCE_LENGTH,
                               generator=torch.Generator().manual_seed(0)).images[0], dtype=np.float32)

    plain, negated = run(""), run("a blue circle on a red background")
    assert plain.shape == (64, 64, 3)
    assert np.abs(plain - negated).mean() > 0  # the negative prompt reaches the model


# The training/inference contract: the training forward pass must compute what the pipeline computes.


def _capture_transformer_calls(pipe):
    calls = []

    def hook(module, args, kwargs, output):
        calls.append(({k: v.clone() if torch.is_tensor(v) else v for k, v in kwargs.items()}, output[0].clone()))

    return calls, pipe.transformer.register_forward_hook(hook, with_kwargs=True)


@pytest.fixture(scope="module")
def fresh_vae():
    torch.manual_seed(0)
    return build_vae((8, 16, 32, 32)).eval()


def test_flux_training_forward_matches_the_pipeline(fresh_vae):
    pipe = build_flux_pipeline(fresh_vae, seed=1)
    pipe.set_progress_bar_config(disable=True)
    caption = CAPTIONS[5]
    calls, handle = _capture_transformer_calls(pipe)
    with torch.no_grad():
        pipe(caption, height=64, width=64, num_inference_steps=2, guidance_scale=0.0,
             max_sequence_length=MAX_SEQUENCE_LENGTH, generator=torch.Generator().manual_seed(0))
    handle.remove()
    kwargs, output = calls[1]  # the second step, at sigma 0.5
    sigma = pipe.scheduler.sigmas[1].reshape(1)
    assert 0.0 < float(sigma) < 1.0
    table = encode_captions(pipe, "flux", [caption], MAX_SEQUENCE_LENGTH, torch.device("cpu"))
    x_t = pipe._unpack_latents(kwargs["hidden_states"], 64, 64, pipe.vae_scale_factor)
    with torch.no_grad():
        ours = flux_predict(pipe, x_t, sigma, table.embeds, table.pooled, table.text_ids)
    torch.testing.assert_close(ours, pipe._unpack_latents(output, 64, 64, pipe.vae_scale_factor))
    with torch.no_grad():  # and a forward pass that got the timestep unit wrong would differ
        wrong = flux_predict(pipe, x_t, sigma * 1000, table.embeds, table.pooled, table.text_ids)
    assert not torch.allclose(wrong, ours, atol=1e-3)


def test_sd3_training_forward_matches_the_pipeline(fresh_vae):
    pipe = build_sd3_pipeline(fresh_vae, seed=2)
    pipe.set_progress_bar_config(disable=True)
    caption = CAPTIONS[11]
    calls, handle = _capture_transformer_calls(pipe)
    with torch.no_grad():
        pipe(caption, height=64, width=64, num_inference_steps=2, guidance_scale=1.0,
             max_sequence_length=MAX_SEQUENCE_LENGTH, generator=torch.Generator().manual_seed(0))
    handle.remove()
    kwargs, output = calls[1]
    sigma = pipe.scheduler.sigmas[1].reshape(1)
    assert 0.0 < float(sigma) < 1.0
    table = encode_captions(pipe, "sd3", [caption], MAX_SEQUENCE_LENGTH, torch.device("cpu"))
    with torch.no_grad():
        ours = sd3_predict(pipe, kwargs["hidden_states"], sigma, table.embeds, table.pooled, None)
    torch.testing.assert_close(ours, output)
