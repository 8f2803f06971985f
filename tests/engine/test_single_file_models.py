"""A ComfyUI models tree of single files (BFL keys, an all-in-one SD3.5 checkpoint) found by the catalog,
loaded offline by the engine and generating, with A1111's model hash of the transformer file."""

import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "families"))
from fixtures_single_file import write_flux, write_sd3_checkpoint  # noqa: E402

from app.engine.engine import Engine  # noqa: E402
from app.errors import MissingModelFiles  # noqa: E402
from app.generation.infotext import parse_infotext  # noqa: E402
from app.generation.request import validate_request  # noqa: E402
from app.settings import Settings  # noqa: E402


@pytest.fixture(scope="module")
def comfy_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("comfy-models")
    flux = write_flux(root, guidance=True)
    sd3 = write_sd3_checkpoint(root)
    return root, flux, sd3


@pytest.fixture(scope="module")
def comfy_engine(comfy_tree, tmp_path_factory):
    root, _, _ = comfy_tree
    out = tmp_path_factory.mktemp("out")
    eng = Engine(Settings(models_dir=root, outputs_dir=out, device="cpu", demo_models=False,
                          settings_file=out / "settings.json", hf_cache=out / "no-hf-cache"))
    yield eng
    eng.close()


def test_catalog_pairs_the_single_files_and_marks_them_ready(comfy_engine):
    models = {m.name: m for m in comfy_engine.models()}
    flux = models["flux-tiny"]
    assert (flux.family, flux.variant, flux.format, flux.status) == ("flux", "flux-dev", "single-file", "ready")
    assert {"transformer", "clip_l", "t5xxl", "vae"} <= set(flux.parts)
    aio = models["sd3.5-tiny-aio"]
    assert (aio.family, aio.status) == ("sd3", "ready")


@pytest.mark.parametrize("name, family_key", [("flux-tiny", "Distilled CFG Scale"), ("sd3.5-tiny-aio", "CFG scale")])
def test_single_file_models_generate_with_the_file_hash(comfy_engine, comfy_tree, name, family_key):
    root, flux, sd3 = comfy_tree
    req = validate_request(prompt="a cat", model=name, width=64, height=64, steps=2, seed=1)
    result = comfy_engine.generate(req, timeout=120)
    assert result.images[0].size == (64, 64)
    info = parse_infotext(result.infotexts[0])
    main_file = (flux if name == "flux-tiny" else sd3).entry.parts.get("transformer") or sd3.entry.parts["checkpoint"]
    assert info.params["Model hash"] == hashlib.sha256(Path(main_file).read_bytes()).hexdigest()[:10]
    assert family_key in info.params


def test_a_flux_file_without_its_t5_tokenizer_says_where_to_put_it(tmp_path):
    write_flux(tmp_path, guidance=False, tokenizer=False)
    eng = Engine(Settings(models_dir=tmp_path, outputs_dir=tmp_path / "out", device="cpu", demo_models=False,
                          settings_file=tmp_path / "s.json", hf_cache=tmp_path / "no-hf-cache"))
    try:
        job = eng.submit(validate_request(prompt="x", model="flux-tiny", width=64, height=64, steps=1))
        with pytest.raises(MissingModelFiles) as err:
            job.result(timeout=60)
        message = str(err.value)
        assert "t5-tokenizer" in message and ("spiece.model" in message or "tokenizer.json" in message)
        print(message)
    finally:
        eng.close()
