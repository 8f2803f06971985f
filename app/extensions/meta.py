"""extension.toml: what an extension says about itself, and the checks on names and Easel versions.

    name = "xyz-plot"
    version = "1.0.0"
    description = "X/Y/Z plots"
    author = "..."
    url = "https://..."
    requires = ">=0.1,<0.2"          # Easel versions it works with
    dependencies = ["numpy>=1.26"]    # installed with pip at install time
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

META_FILE = "extension.toml"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ExtensionError(Exception):
    """Something about an extension a user can act on; the message says what."""


def check_name(name: str) -> str:
    """A folder name under extensions/: letters, digits, `.`, `_`, `-`; no separators, no `..`."""
    if not _NAME.match(name or "") or ".." in name:
        raise ExtensionError(f"{name!r} is not a valid extension name: use letters, digits, '.', '_' and '-' "
                             "(no path separators or '..')")
    return name


@dataclass(frozen=True)
class ExtensionMeta:
    name: str
    version: str = ""
    description: str = ""
    author: str = ""
    url: str = ""
    requires: str = ""
    dependencies: tuple[str, ...] = field(default_factory=tuple)

    def supports(self, easel_version: str) -> bool:
        return not self.requires or Version(easel_version) in SpecifierSet(self.requires)


def read_meta(folder: Path) -> ExtensionMeta:
    """The folder's extension.toml; without one, the folder name and nothing else (A1111 extensions
    have none). ExtensionError for a file that is not valid."""
    folder = Path(folder)
    path = folder / META_FILE
    if not path.is_file():
        return ExtensionMeta(name=folder.name)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ExtensionError(f"{META_FILE}: not readable TOML ({exc})") from None
    strings = {k: data.get(k, "") for k in ("name", "version", "description", "author", "url", "requires")}
    for key, value in strings.items():
        if not isinstance(value, str):
            raise ExtensionError(f"{META_FILE}: {key} must be a string")
    requires = strings["requires"].strip()
    try:
        SpecifierSet(requires)
    except InvalidSpecifier:
        raise ExtensionError(f"{META_FILE}: requires {requires!r} is not a version range like '>=0.1,<0.2'") from None
    deps = data.get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise ExtensionError(f"{META_FILE}: dependencies must be a list of requirement strings")
    for dep in deps:
        check_requirement(dep)
    return ExtensionMeta(name=strings["name"] or folder.name, version=strings["version"],
                         description=strings["description"], author=strings["author"], url=strings["url"],
                         requires=requires, dependencies=tuple(deps))


def check_requirement(text: str) -> str:
    """A PEP 508 requirement, so that pip gets a package name and never an option such as --index-url."""
    try:
        Requirement(text)
    except InvalidRequirement:
        raise ExtensionError(f"dependency {text!r} is not a Python requirement like 'numpy>=1.26'") from None
    if text.strip().startswith("-"):
        raise ExtensionError(f"dependency {text!r} is not a Python requirement like 'numpy>=1.26'")
    return text
