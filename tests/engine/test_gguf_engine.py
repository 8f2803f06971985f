"""A FLUX.1 transformer in GGUF files beside its safetensors original, generating through the engine: the
Q8_0 picture is all but the full-precision one, the Q4_0 picture near it, each named in the infotext; a LoRA
on a GGUF model is refused at submit, named."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "families"))
from fixtures_single_file import flux_to_bfl, save_gguf, write_flux  # noqa: E402

from app.engine.engine import Engine  # noqa: E402
from app.errors import InvalidRequest  # noqa: E402
from app.generation.request import LoraAddon, validate_request  # noqa: E402
from app.settings import Settings  # noqa: E402


@pytest.fixture(scope="module")
def gguf_engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf-models")
    tiny = write_flux(root, guidance=True, prefix="")
    bfl = flux_to_bfl(tiny.originals["transformer"])
    for quant in ("Q8_0", "Q4_0"):
        save_gguf(root / "diffusion_models" / f"flux-tiny-{quant}.gguf", bfl, quant)
    inner = tiny.originals["transformer"].x_embedder.out_features
    (root / "loras").mkdir()
    save_file({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": torch.ones(2, inner),
               "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": torch.ones(inner, 2)},
              str(root / "loras" / "style.safetensors"))
    out = tmp_path_factory.mktemp("out")
    eng = Engine(Settings(models_dir=root, outputs_dir=out, device="cpu", demo_models=False, max_loaded_models=1,
                          settings_file=out / "settings.json", hf_cache=out / "no-hf-cache"))
    yield eng
    eng.close()


def generate(engine, model, **extra):
    req = validate_request(prompt="a cat", model=model, width=64, height=64, steps=2, seed=3, save=False, **extra)
    return engine.generate(req, timeout=300)


def test_gguf_pictures_follow_the_full_precision_one(gguf_engine):
    full = np.asarray(generate(gguf_engine, "flux-tiny").images[0]).astype(float)
    q8, q4 = (generate(gguf_engine, f"flux-tiny-{q}") for q in ("Q8_0", "Q4_0"))
    q8_diff = np.abs(np.asarray(q8.images[0]).astype(float) - full).mean()
    q4_diff = np.abs(np.asarray(q4.images[0]).astype(float) - full).mean()
    assert full.std() > 5  # a picture, not a flat colour
    print(f"mean pixel difference from full precision: Q8_0 {q8_diff:.2f}, Q4_0 {q4_diff:.2f}")
    assert q8_diff < 2.0 and q4_diff < 12.0, (q8_diff, q4_diff)
    assert "Model: flux-tiny-Q8_0" in q8.infotexts[0] and "Model hash: " in q8.infotexts[0]


def test_a_lora_on_a_gguf_model_is_refused_at_submit(gguf_engine):
    with pytest.raises(InvalidRequest) as err:
        generate(gguf_engine, "flux-tiny-Q8_0", addons=[LoraAddon(name="style")])
    assert err.value.field == "addons[0].name" and "GGUF" in err.value.message and ".safetensors" in err.value.message
    assert generate(gguf_engine, "flux-tiny", addons=[LoraAddon(name="style")]).images  # the original takes it
