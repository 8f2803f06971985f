"""A FLUX.1 transformer in GGUF files beside its safetensors original, generating through the engine: the
Q8_0 picture is all but the full-precision one, the Q4_0 picture near it, each named in the infotext; a LoRA
acts on a GGUF model as on the original, added beside its quantized layers, and comes off exactly."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "families"))
from fixtures_single_file import flux_to_bfl, save_gguf, write_flux  # noqa: E402

from app.engine.engine import Engine  # noqa: E402
from app.generation.request import LoraAddon, validate_request  # noqa: E402
from app.settings import Settings  # noqa: E402


@pytest.fixture(scope="module")
def gguf_engine(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf-models")
    tiny = write_flux(root, guidance=True, prefix="")
    bfl = flux_to_bfl(tiny.originals["transformer"])
    for quant in ("Q8_0", "Q4_0"):
        save_gguf(root / "diffusion_models" / f"flux-tiny-{quant}.gguf", bfl, quant)
    (root / "loras").mkdir()
    g = torch.Generator().manual_seed(4)
    lora = {}
    for name, module in tiny.originals["transformer"].named_modules():
        if name.endswith(("attn.to_q", "attn.to_v", "ff.net.2")):
            lora[f"transformer.{name}.lora_A.weight"] = torch.randn(4, module.in_features, generator=g) * 0.3
            lora[f"transformer.{name}.lora_B.weight"] = torch.randn(module.out_features, 4, generator=g) * 0.3
    save_file(lora, str(root / "loras" / "style.safetensors"))
    (root / "controlnet").mkdir()
    inner = tiny.originals["transformer"].x_embedder.out_features
    save_file({"img_in.lora_A.weight": torch.randn(4, 128, generator=g), "img_in.lora_B.weight": torch.zeros(inner, 4)},
              str(root / "controlnet" / "flux1-canny-dev-lora.safetensors"))
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


def test_a_lora_on_a_gguf_model_acts_as_on_the_original_and_comes_off_exactly(gguf_engine):
    base = pixels(generate(gguf_engine, "flux-tiny-Q8_0"))
    styled = generate(gguf_engine, "flux-tiny-Q8_0", addons=[LoraAddon(name="style")])
    original = pixels(generate(gguf_engine, "flux-tiny", addons=[LoraAddon(name="style")]))
    print(f"LoRA on GGUF: {np.abs(pixels(styled) - base).mean():.2f} from the base, {np.abs(pixels(styled) - original).mean():.2f} from the LoRA on bf16")
    assert np.abs(pixels(styled) - base).mean() > 2.0  # the LoRA acts
    assert np.abs(pixels(styled) - original).mean() < 2.0  # as it does on the full-precision model
    assert "Lora hashes" in styled.infotexts[0] and not styled.warnings
    assert np.array_equal(pixels(generate(gguf_engine, "flux-tiny-Q8_0")), base)  # taken off exactly


def pixels(result):
    return np.asarray(result.images[0]).astype(float)


def test_a_flux_control_lora_on_a_gguf_model_is_refused_at_submit_named(gguf_engine):
    from PIL import Image

    from app.errors import InvalidRequest
    from app.generation.request import ControlNetAddon

    unit = ControlNetAddon(model="flux1-canny-dev-lora", module="canny", image=Image.new("RGB", (64, 64)))
    with pytest.raises(InvalidRequest) as err:
        generate(gguf_engine, "flux-tiny-Q8_0", addons=[unit])
    assert err.value.field == "addons[0].model" and "GGUF" in err.value.message
