"""Helpers to write small extensions into a temporary extensions folder."""

import textwrap
from pathlib import Path

import pytest

from app.extensions.manager import ExtensionManager

REPO_EXTENSIONS = Path(__file__).resolve().parents[2] / "extensions"


def write_extension(root: Path, name: str, code: str, *, requires: str = ">=0.1,<0.2", version: str = "1.0") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "extension.toml").write_text(
        f'name = "{name}"\nversion = "{version}"\ndescription = "test"\nrequires = "{requires}"\ndependencies = []\n')
    (folder / "__init__.py").write_text("import pluggy\nhookimpl = pluggy.HookimplMarker('easel')\n"
                                        + textwrap.dedent(code))
    return folder


@pytest.fixture
def make_ext():
    return write_extension


@pytest.fixture
def ext_dir(tmp_path) -> Path:
    folder = tmp_path / "extensions"
    folder.mkdir()
    return folder


@pytest.fixture
def settings_file(tmp_path) -> Path:
    return tmp_path / "settings.json"


@pytest.fixture
def new_manager(ext_dir, settings_file):
    """A manager over ext_dir, loaded now: call it again to simulate a restart."""
    return lambda: ExtensionManager(ext_dir, settings_file, entry_points=False).load()
