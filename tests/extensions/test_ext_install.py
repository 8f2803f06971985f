"""Installing from git, a zip or a folder; updating, removing; the gate; archive and name checks; the index."""

import json
import os
import stat
import subprocess
import zipfile

import pytest

from app.extensions import install as installer
from app.extensions.cli import ext_command
from app.extensions.gate import INSECURE_FLAG, LOCAL, gate_for_server
from app.extensions.index import parse_index
from app.extensions.manager import LOADED
from app.extensions.meta import ExtensionError

PRESET_HOOK = """
@hookimpl
def register_presets(register):
    from app.presets import Preset
    register(Preset(name="{name}"))
"""


def git(*args, cwd):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


@pytest.fixture
def git_repo(tmp_path, make_ext):
    repo = make_ext(tmp_path / "src", "hello-ext", PRESET_HOOK.format(name="Hello v1"))
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-q", "-m", "v1", cwd=repo)
    return repo


def test_install_from_git_then_update(git_repo, ext_dir, new_manager):
    report = installer.install(f"file://{git_repo}", ext_dir, LOCAL)
    assert report.name == "hello-ext"
    manager = new_manager()
    assert manager.record("hello-ext").status == LOADED
    assert list(manager.presets()) == ["Hello v1"]

    (git_repo / "__init__.py").write_text((git_repo / "__init__.py").read_text().replace("Hello v1", "Hello v2"))
    git("commit", "-q", "-am", "v2", cwd=git_repo)
    installer.update("hello-ext", ext_dir, LOCAL)
    assert list(new_manager().presets()) == ["Hello v2"]


def test_install_from_zip_strips_the_top_folder(tmp_path, ext_dir, make_ext, new_manager):
    src = make_ext(tmp_path / "src", "zipped", PRESET_HOOK.format(name="From zip"))
    archive = tmp_path / "zipped-main.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in src.iterdir():
            zf.write(path, f"zipped-main/{path.name}")
    installer.install(str(archive), ext_dir, LOCAL, name="zipped")
    assert sorted(p.name for p in (ext_dir / "zipped").iterdir()) == ["__init__.py", "extension.toml"]
    assert "From zip" in new_manager().presets()


def test_install_from_folder_and_remove(tmp_path, ext_dir, make_ext, new_manager):
    src = make_ext(tmp_path / "src", "local-one", PRESET_HOOK.format(name="Local"))
    installer.install(str(src), ext_dir, LOCAL)
    assert "Local" in new_manager().presets()
    with pytest.raises(ExtensionError, match="already installed"):
        installer.install(str(src), ext_dir, LOCAL)
    installer.remove("local-one", ext_dir, LOCAL)
    assert not (ext_dir / "local-one").exists()
    assert "local-one" not in new_manager().records


@pytest.mark.parametrize("entry", ["../escaped.py", "/tmp/absolute.py", "a/../../escaped.py", "a\\..\\x.py"])
def test_zip_entries_reaching_outside_are_refused(tmp_path, ext_dir, entry):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("evil/__init__.py", "")
        zf.writestr(entry, "print('owned')")
    with pytest.raises(ExtensionError, match="refused"):
        installer.install(str(archive), ext_dir, LOCAL)
    assert not (tmp_path / "escaped.py").exists()
    assert list(ext_dir.iterdir()) == []  # no staging folder or partial install left


def test_zip_symlinks_are_refused(tmp_path, ext_dir):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link/secret")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ExtensionError, match="symbolic link"):
        installer.install(str(archive), ext_dir, LOCAL)
    assert list(ext_dir.iterdir()) == []


def test_folder_with_a_symlink_outside_is_refused(tmp_path, ext_dir, make_ext):
    src = make_ext(tmp_path / "src", "linky", "")
    (src / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(ExtensionError, match="links outside"):
        installer.install(str(src), ext_dir, LOCAL)
    assert list(ext_dir.iterdir()) == []


@pytest.mark.parametrize("name", ["../up", "a/b", "..", ".hidden", "a\\b"])
def test_bad_names_are_refused(tmp_path, ext_dir, make_ext, name):
    src = make_ext(tmp_path / "src", "fine", "")
    with pytest.raises(ExtensionError, match="not a valid extension name"):
        installer.install(str(src), ext_dir, LOCAL, name=name)
    with pytest.raises(ExtensionError, match="not a valid extension name"):
        installer.remove(name, ext_dir, LOCAL)


def test_gate_refuses_changes_when_listening(tmp_path, ext_dir, make_ext):
    src = make_ext(tmp_path / "src", "gated", "")
    (ext_dir / "kept").mkdir()
    for gate in (gate_for_server("0.0.0.0", share=False, insecure_access=False),
                 gate_for_server("127.0.0.1", share=True, insecure_access=False)):
        with pytest.raises(ExtensionError, match=INSECURE_FLAG):
            installer.install(str(src), ext_dir, gate)
        with pytest.raises(ExtensionError, match="cannot remove"):
            installer.remove("kept", ext_dir, gate)
        with pytest.raises(ExtensionError, match="cannot update"):
            installer.update("kept", ext_dir, gate)
    assert sorted(p.name for p in ext_dir.iterdir()) == ["kept"]
    installer.install(str(src), ext_dir, gate_for_server("0.0.0.0", share=False, insecure_access=True))
    assert (ext_dir / "gated" / "__init__.py").exists()
    assert gate_for_server("127.0.0.1", share=False, insecure_access=False).allow_changes


def test_dependencies_must_be_requirements_not_pip_options(tmp_path, ext_dir, make_ext):
    src = make_ext(tmp_path / "src", "deps", "")
    toml = src / "extension.toml"
    toml.write_text(toml.read_text().replace("dependencies = []", 'dependencies = ["--index-url=http://evil"]'))
    with pytest.raises(ExtensionError, match="not a Python requirement"):
        installer.install(str(src), ext_dir, LOCAL)
    assert list(ext_dir.iterdir()) == []


def test_an_index_is_parsed_entry_by_entry():
    raw = json.dumps({"extensions": [
        {"name": "One", "url": "https://example.com/one.git", "description": "first", "tags": ["tab"]},
        {"name": "no url"}]}).encode()
    entries = parse_index(raw)
    assert [(e.name, e.url, e.tags) for e in entries] == [("One", "https://example.com/one.git", ("tab",))]
    with pytest.raises(ExtensionError, match='no "extensions" list'):
        parse_index(b"[]")


def test_cli_list_disable_remove(tmp_path, ext_dir, make_ext, settings_file, capsys):
    from app.cli import build_parser
    from app.settings import Settings

    make_ext(ext_dir, "cli-one", "")
    parser = build_parser()
    settings = Settings(settings_file=settings_file)

    def run(*argv, confirm=lambda _: "n"):
        args = parser.parse_args(["ext", "--extensions-dir", str(ext_dir), *argv])
        return ext_command(settings, args, confirm=confirm)

    assert run("list") == 0
    assert "cli-one\t1.0\tloaded" in capsys.readouterr().out
    assert run("disable", "cli-one") == 0
    run("list")
    assert "cli-one\t1.0\tdisabled" in capsys.readouterr().out
    assert run("remove", "cli-one") == 1  # answered no
    assert (ext_dir / "cli-one").exists()
    assert run("remove", "cli-one", confirm=lambda _: "y") == 0
    assert not (ext_dir / "cli-one").exists()
    assert run("enable", "nothing-here") == 2
    assert "no extension named" in capsys.readouterr().out
