"""A broken extension is listed with its error; the others keep working, and so does the caller."""

import logging

import pytest

from app.extensions.manager import DISABLED, FAILED, LOADED
from app.generation.request import validate_request

GOOD = """
seen = []

@hookimpl
def on_image_saved(path, infotext):
    seen.append((path.name, infotext))

@hookimpl
def adjust_request(request):
    return request.model_copy(update={"prompt": request.prompt + ", good"})

@hookimpl
def on_step_end(step, total):
    seen.append(("step", step, total))
"""


@pytest.fixture
def zoo(ext_dir, make_ext):
    make_ext(ext_dir, "good", GOOD)
    make_ext(ext_dir, "import-error", "import no_such_module_anywhere\n")
    make_ext(ext_dir, "raising", """
@hookimpl
def on_image_saved(path, infotext):
    raise RuntimeError("boom in on_image_saved")

@hookimpl
def on_step_end(job, step, total, latents):
    raise RuntimeError("boom in on_step_end")
""")
    make_ext(ext_dir, "too-new", "@hookimpl\ndef on_image_saved(path):\n    raise AssertionError('must not run')\n",
             requires=">=9.0")
    make_ext(ext_dir, "bad-toml", "")
    (ext_dir / "bad-toml" / "extension.toml").write_text("name = [unclosed")
    return ext_dir


def test_broken_extensions_are_listed_with_their_errors(zoo, new_manager, caplog):
    with caplog.at_level(logging.ERROR):
        manager = new_manager()
    status = {name: r.status for name, r in manager.records.items()}
    assert status == {"bad-toml": FAILED, "good": LOADED, "import-error": FAILED, "raising": LOADED,
                      "too-new": FAILED}
    assert "no_such_module_anywhere" in manager.record("import-error").errors[0]
    assert "needs Easel >=9.0" in manager.record("too-new").errors[0]
    assert "TOML" in manager.record("bad-toml").errors[0]
    assert "no_such_module_anywhere" in caplog.text


def test_a_raising_hook_is_skipped_and_the_others_still_run(zoo, new_manager, tmp_path):
    manager = new_manager()
    good = manager.record("good").module
    manager.image_saved(tmp_path / "a.png", "text one")  # must not raise
    manager.image_saved(tmp_path / "b.png", "text two")
    assert good.seen == [("a.png", "text one"), ("b.png", "text two")]
    raising = manager.record("raising")
    assert raising.status == FAILED
    assert raising.errors == ["on_image_saved failed: RuntimeError: boom in on_image_saved"]


def test_a_failing_on_step_end_never_stops_the_caller(zoo, new_manager):
    manager = new_manager()
    for step in (1, 2):
        manager.step_end(job=None, step=step, total=2, latents=None)
    assert manager.record("good").module.seen == [("step", 1, 2), ("step", 2, 2)]
    assert "boom in on_step_end" in manager.record("raising").errors[0]


def test_adjust_request_is_chained_and_invalid_results_are_dropped(ext_dir, make_ext, new_manager):
    make_ext(ext_dir, "a-good", GOOD)
    make_ext(ext_dir, "b-bad-size", """
@hookimpl
def adjust_request(request):
    return request.model_copy(update={"width": 72})
""")
    make_ext(ext_dir, "c-upper", """
@hookimpl
def adjust_request(request):
    return request.model_copy(update={"prompt": request.prompt.upper()})
""")
    manager = new_manager()
    adjusted = manager.adjust_request(validate_request(prompt="a cat", width=64, height=64))
    assert adjusted.prompt == "A CAT, GOOD"
    assert adjusted.width == 64
    assert "multiple of 16" in manager.record("b-bad-size").errors[0]


def test_registrations_of_a_raising_extension_are_dropped(ext_dir, make_ext, new_manager):
    make_ext(ext_dir, "half", """
@hookimpl
def register_presets(register):
    from app.presets import Preset
    register(Preset(name="Half"))
    raise ValueError("then fails")
""")
    make_ext(ext_dir, "whole", """
@hookimpl
def register_presets(register, easel):
    from app.presets import Preset
    register(Preset(name="Whole"))
""")
    manager = new_manager()
    assert list(manager.presets()) == ["Whole"]
    assert manager.record("half").status == FAILED


def test_disabled_extension_stays_disabled_after_restart(ext_dir, make_ext, new_manager, settings_file):
    settings_file.write_text('{"outputs_dir": "/somewhere"}')
    make_ext(ext_dir, "good", GOOD)
    first = new_manager()
    first.set_enabled("good", False)
    assert not first.has("on_image_saved")  # its hooks stop at once

    restarted = new_manager()
    assert restarted.record("good").status == DISABLED
    assert restarted.record("good").module is None
    assert '"outputs_dir": "/somewhere"' in settings_file.read_text()  # the rest of the file is kept

    restarted.set_enabled("good", True)
    assert new_manager().record("good").status == LOADED


def test_api_routes_are_served_per_extension(ext_dir, make_ext, new_manager):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    make_ext(ext_dir, "hello", """
@hookimpl
def register_api_routes(router):
    @router.get("/hi")
    def hi():
        return {"hello": "world"}
""")
    make_ext(ext_dir, "broken-api", """
@hookimpl
def register_api_routes(router):
    @router.get("/half")
    def half():
        return {}
    raise RuntimeError("no routes for you")
""")
    manager = new_manager()
    app = FastAPI()
    app.include_router(manager.api_router(easel=None), prefix="/sdapi/v1")
    client = TestClient(app)
    assert client.get("/sdapi/v1/ext/hello/hi").json() == {"hello": "world"}
    assert client.get("/sdapi/v1/ext/broken-api/half").status_code == 404
    assert manager.record("broken-api").status == FAILED


def test_entry_point_packages_load(tmp_path, monkeypatch, settings_file):
    from app.extensions.manager import ExtensionManager

    site = tmp_path / "site"
    (site / "easel_pkg_demo").mkdir(parents=True)
    (site / "easel_pkg_demo" / "__init__.py").write_text(
        "import pluggy\nhookimpl = pluggy.HookimplMarker('easel')\n"
        "@hookimpl\ndef register_presets(register):\n    from app.presets import Preset\n"
        "    register(Preset(name='From package'))\n")
    info = site / "easel_pkg_demo-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: easel-pkg-demo\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[easel]\npkgdemo = easel_pkg_demo\n")
    monkeypatch.syspath_prepend(str(site))
    manager = ExtensionManager(tmp_path / "no-folder", settings_file).load()
    assert manager.record("pkgdemo").status == LOADED
    assert manager.record("pkgdemo").meta.version == "0.3"
    assert "From package" in manager.presets()
