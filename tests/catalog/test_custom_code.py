"""A diffusers folder that would run its own Python when loaded is listed as not ready, says which code,
and is never the default model."""

import json

import pytest
from tinyfiles import write_diffusers_folder, write_json, write_model, write_text

from app.catalog.entry import CUSTOM_CODE, READY
from app.catalog.scan import scan_models
from app.engine.engine import Engine
from app.errors import EaselError, ModelNotFound
from app.settings import Settings

SUFFIX = "Easel loads only diffusers and transformers classes"


def _set_component(folder, component, spec):
    index = json.loads((folder / "model_index.json").read_text())
    index[component] = spec
    write_json(folder / "model_index.json", index)


def _custom_transformer(folder):
    """What a hub repo with its own transformer class looks like: the class in a .py beside its weights."""
    _set_component(folder, "transformer", ["my_module", "MyTransformer"])
    write_text(folder / "transformer" / "my_module.py", "class MyTransformer: ...\n")
    return folder


def _only(root):
    [model] = scan_models([root]).models
    return model


def test_a_custom_component_class_is_not_ready_and_named(tmp_path):
    _custom_transformer(write_diffusers_folder(tmp_path / "flux-custom", "flux"))
    model = _only(tmp_path)
    assert (model.status, model.ready, model.family) == (CUSTOM_CODE, False, "flux")
    assert model.problems == (f"needs custom code (component transformer: my_module.MyTransformer); {SUFFIX}",)


def test_a_custom_pipeline_class_is_not_ready_and_keeps_its_family(tmp_path):
    folder = write_diffusers_folder(tmp_path / "sd3-custom", "sd3")
    _set_component(folder, "_class_name", ["pipeline_sd3_custom", "SD3CustomPipeline"])
    write_text(folder / "pipeline_sd3_custom.py", "class SD3CustomPipeline: ...\n")
    model = _only(tmp_path)
    assert (model.status, model.family, model.variant) == (CUSTOM_CODE, "sd3", "sd3.5-large")
    assert model.problems == (f"needs custom code (pipeline: pipeline_sd3_custom.SD3CustomPipeline); {SUFFIX}",)


def test_an_auto_class_with_an_auto_map_is_remote_code(tmp_path):
    folder = write_diffusers_folder(tmp_path / "flux", "flux")
    _set_component(folder, "text_encoder_2", ["transformers", "AutoModel"])
    write_json(folder / "text_encoder_2" / "config.json", {"auto_map": {"AutoModel": "modeling_t5x.T5X"}})
    model = _only(tmp_path)
    assert model.status == CUSTOM_CODE
    assert model.problems[0] == (f"needs custom code (component text_encoder_2: AutoModel with auto_map "
                                 f"modeling_t5x.T5X in config.json); {SUFFIX}")


def test_every_piece_of_custom_code_is_named_in_one_line(tmp_path):
    folder = _custom_transformer(write_diffusers_folder(tmp_path / "flux", "flux"))
    _set_component(folder, "vae", ["my_vae", "MyVAE"])
    assert _only(tmp_path).problems[0] == (
        f"needs custom code (component transformer: my_module.MyTransformer; component vae: my_vae.MyVAE); {SUFFIX}")


def test_code_that_would_never_run_does_not_count(tmp_path):
    # transformers ignores an auto_map beside a concrete class, and nothing imports a stray .py file
    folder = write_diffusers_folder(tmp_path / "flux", "flux")
    config = folder / "text_encoder_2" / "config.json"
    write_json(config, {**json.loads(config.read_text()), "auto_map": {"AutoModel": "modeling_t5x.T5X"}})
    write_text(folder / "text_encoder_2" / "modeling_t5x.py", "raise SystemExit\n")
    write_text(folder / "convert.py", "print('a script the uploader left')\n")
    assert _only(tmp_path).status == READY


def test_a_component_from_a_diffusers_pipeline_module_is_not_custom_code(tmp_path):
    # SD 1.x repos declare their safety checker this way; diffusers imports it from its own package
    folder = write_diffusers_folder(tmp_path / "flux", "flux")
    _set_component(folder, "safety_checker", ["stable_diffusion", "StableDiffusionSafetyChecker"])
    write_json(folder / "safety_checker" / "config.json", {})
    write_model(folder / "safety_checker" / "model.safetensors", {"w": (1,)})
    assert _only(tmp_path).status == READY


def test_a_custom_code_folder_in_the_hf_cache_is_listed_not_ready(tmp_path):
    repo = tmp_path / "hub" / "models--someone--flux-custom"
    _custom_transformer(write_diffusers_folder(repo / "snapshots" / "abc", "flux"))
    write_text(repo / "refs" / "main", "abc")
    [model] = scan_models([], hf_cache=tmp_path).models
    assert (model.name, model.status) == ("someone/flux-custom", CUSTOM_CODE)


@pytest.fixture
def engine_over(tmp_path):
    engines = []

    def make(root):
        engine = Engine(Settings(models_dir=root, outputs_dir=tmp_path / "out", settings_file=tmp_path / "s.json",
                                 hf_cache=tmp_path / "no-hf-cache", device="cpu", demo_models=False))
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def test_a_custom_code_model_is_never_the_default(tmp_path, engine_over):
    root = tmp_path / "models"
    _custom_transformer(write_diffusers_folder(root / "a-custom", "flux"))  # first by name
    write_diffusers_folder(root / "b-plain", "flux")
    assert engine_over(root).resolve_model(None).name == "b-plain"


def test_with_only_a_custom_code_model_there_is_no_default_and_loading_it_says_why(tmp_path, engine_over):
    root = tmp_path / "models"
    _custom_transformer(write_diffusers_folder(root / "a-custom", "flux"))
    engine = engine_over(root)
    with pytest.raises(ModelNotFound, match="no model is ready"):
        engine.resolve_model(None)
    with pytest.raises(EaselError, match=r"a-custom cannot be loaded: needs custom code \(component transformer"):
        engine.load("a-custom")
