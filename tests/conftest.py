import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def demo_models_dir(tmp_path_factory):
    """A models folder holding the random-weight demo models, built once per test session."""
    from app.demo.build import ensure_demo_models

    models = tmp_path_factory.mktemp("models")
    ensure_demo_models(models)
    return models
