import contextlib
import os
import threading

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


@contextlib.contextmanager
def _held_worker(engine, timeout: float = 120):
    """The engine's worker busy with a job that waits for an Event: jobs submitted meanwhile stay queued."""
    started, release = threading.Event(), threading.Event()

    def hold():
        started.set()
        release.wait(timeout)

    blocker = engine.submit_call(hold, task="hold")
    assert started.wait(timeout), "the worker never started the holding job"
    try:
        yield blocker
    finally:
        release.set()
        blocker.wait_done(timeout)


@pytest.fixture
def hold_worker():
    """`with hold_worker(engine): ...`: jobs submitted inside stay queued until the block ends."""
    return _held_worker
