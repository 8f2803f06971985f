"""The demo LoRA trainer end to end with the smoke config, on the shipped demo models.

A handful of steps per stage (seconds on 2 cores): what is checked is the path the full run takes and
the file it ships (keys, metadata, the .json beside it, loading with the pipelines' own
`load_lora_weights`), not whether the colour is learnt; the content tests judge the shipped LoRAs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from app.demo.train_lora import FAMILIES, main, train_loras
from app.demo.train_lora_config import SMOKE
from app.demo.train_lora_eval import load_demo
from app.settings import PROJECT_ROOT

DEMO = PROJECT_ROOT / "models" / "demo"
ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("loras")
    lines: list[str] = []
    report = train_loras(out, ("flux", "sd3"), SMOKE, "cpu", seed=0, base_dir=DEMO,
                         pool_cache=tmp_path_factory.mktemp("cache") / "pool.pt", log=lines.append)
    return out, report, lines


def _mean(values):
    return sum(values) / len(values)


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_loss_goes_down(smoke, family):
    _, report, lines = smoke
    res = report["families"][family]
    losses = [loss for r in res["rounds"] for loss in r["losses"]]
    assert len(losses) == res["steps"] == SMOKE.max_rounds * getattr(SMOKE, family).steps >= 12
    assert all(np.isfinite(losses))
    before, after = res["held_out"][0], res["held_out"][-1]  # one fixed draw: same latents, noise, levels
    assert after["new"] < 0.9 * before["new"]
    progress = [line for line in lines if line.startswith(f"[{family}] step ")]
    assert progress and all(" loss " in line for line in progress)


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_file_has_diffusers_keys_fp16_and_metadata(smoke, family):
    out, report, _ = smoke
    path = out / f"{FAMILIES[family]['file']}.safetensors"
    assert report["families"][family]["file"] == str(path)
    with safe_open(str(path), "pt") as st:
        keys, meta = list(st.keys()), st.metadata()
        dtypes = {st.get_tensor(k).dtype for k in keys}
        shapes = {k: tuple(st.get_tensor(k).shape) for k in keys}
    assert dtypes == {torch.float16}
    assert keys and all(k.startswith("transformer.") and k.endswith((".lora_A.weight", ".lora_B.weight"))
                        for k in keys)
    modules = {k.rsplit(".lora_", 1)[0] for k in keys}
    assert all(m.endswith(FAMILIES[family]["targets"]) for m in modules)
    assert {m.rsplit(".attn.", 1)[1] for m in modules if ".attn." in m} >= set(ATTENTION)
    assert all(shapes[f"{m}.lora_A.weight"][0] == SMOKE.rank == shapes[f"{m}.lora_B.weight"][1] for m in modules)
    assert meta["easel.family"] == family
    assert meta["easel.base_model"] == FAMILIES[family]["model"]
    assert meta["easel.trigger_words"] == "purple"
    assert meta["lora_rank"] == meta["lora_alpha"] == str(SMOKE.rank)  # scale 1
    assert "purple" in json.loads(meta["ss_tag_frequency"])["shapes"]
    assert path.stat().st_size < 1_000_000


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_sidecar_json_names_the_trigger_word_and_base_model(smoke, family):
    out, _, _ = smoke
    info = json.loads((out / f"{FAMILIES[family]['file']}.json").read_text())
    assert info["activation text"] == "purple" and info["trained words"] == ["purple"]
    assert info["base model"] == FAMILIES[family]["model"]
    assert info["sd version"] and info["description"]
    assert sorted(p.suffix for p in out.iterdir() if p.stem == FAMILIES[family]["file"]) == [".json", ".safetensors"]


@pytest.mark.parametrize("family", ["flux", "sd3"])
def test_file_loads_with_load_lora_weights_and_changes_the_picture(smoke, family):
    out, _, _ = smoke
    pipe, meta = load_demo(DEMO / FAMILIES[family]["model"], torch.device("cpu"))

    def picture():
        return np.asarray(pipe("a purple circle on a white background", height=64, width=64, num_inference_steps=2,
                               max_sequence_length=meta["max_sequence_length"],
                               generator=torch.Generator().manual_seed(0)).images[0], dtype=np.float32)

    before = picture()
    pipe.load_lora_weights(str(out / f"{FAMILIES[family]['file']}.safetensors"), adapter_name="purple")
    assert pipe.get_list_adapters() == {"transformer": ["purple"]}
    after = picture()
    assert after.shape == (64, 64, 3)
    assert np.abs(after - before).mean() > 0  # the LoRA reaches the model
    pipe.set_adapters("purple", 0.0)
    np.testing.assert_allclose(picture(), before, atol=1e-3)


def test_judge_figures_are_printed(smoke):
    _, report, lines = smoke
    for family in ("flux", "sd3"):
        judged = report["families"][family]["rounds"][-1]["judged"]
        assert set(judged["with"]) >= {"headline", "control", "ordinary", "new_captions"}
        assert any(line.startswith(f"[{family}] round 1: ") and "seeds with the LoRA" in line for line in lines)


def test_a_second_run_reads_the_latent_pool_the_first_kept_and_other_settings_build_it_again(smoke, tmp_path):
    from app.demo.train_lora import lora_captions, pool_for

    _, report, lines = smoke
    assert not any("pool read from" in line for line in lines)
    cache = tmp_path / "pool.pt"
    vae = load_demo(DEMO / FAMILIES["flux"]["model"], torch.device("cpu"))[0].vae
    first = pool_for(vae, SMOKE, lora_captions(), torch.device("cpu"), 0, cache, lines.append)[0]
    again_lines: list[str] = []
    again, again_report = pool_for(vae, SMOKE, lora_captions(), torch.device("cpu"), 0, cache, again_lines.append)
    assert again_lines == [f"[latents] pool read from {cache}"]
    assert all(torch.equal(first.mean[s], again.mean[s]) for s in SMOKE.sizes)
    assert again_report["sizes"]
    other_seed: list[str] = []
    pool_for(vae, SMOKE, lora_captions(), torch.device("cpu"), 1, cache, other_seed.append)
    assert "was saved for other settings" in other_seed[0]


def test_cli_refuses_a_folder_without_the_demo_models(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--out", str(tmp_path / "out"), "--base", str(tmp_path), "--config", "smoke", "--family", "flux"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "no demo model easel-demo-shapes-flux" in err and str(tmp_path) in err
    assert not (tmp_path / "out").exists()
