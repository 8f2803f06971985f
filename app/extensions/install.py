"""Installing, updating and removing extension folders: from a git URL, a .zip, or a local folder.

Everything lands in a hidden staging folder inside extensions/ first and is renamed into place only
when complete and checked, so a failed install leaves nothing behind. Archive entries and symlinks
that would reach outside the extension's folder are refused.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from app.extensions.gate import ChangeGate
from app.extensions.meta import ExtensionError, check_name, read_meta

MAX_ZIP_BYTES = 512 * 1024 * 1024  # uncompressed; a zip bomb stops here
GIT_TIMEOUT_S = 600
_GIT_SCHEMES = ("http", "https", "git", "ssh", "file")


@dataclass
class InstallReport:
    name: str
    path: Path
    log: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.log)


def install(source: str, extensions_dir: Path, gate: ChangeGate, *, name: str | None = None,
            install_dependencies: bool = True) -> InstallReport:
    """Install `source` (git URL, .zip path or file:// URL, or folder) as extensions/<name>."""
    gate.check("install")
    source = source.strip()
    local = _local_path(source)
    name = check_name(name or _name_from(source))
    extensions_dir = Path(extensions_dir)
    target = extensions_dir / name
    if target.exists():
        raise ExtensionError(f"an extension named {name!r} is already installed; remove it first or pass another name")
    extensions_dir.mkdir(parents=True, exist_ok=True)
    report = InstallReport(name, target)
    staging = Path(tempfile.mkdtemp(prefix=".installing-", dir=extensions_dir))
    try:
        content = staging / name
        if local is not None and not local.exists():
            raise ExtensionError(f"{local} does not exist")
        if local is not None and local.is_file():
            if not zipfile.is_zipfile(local):
                raise ExtensionError(f"{local} is not a .zip archive")
            report.log.append(f"extracting {local}")
            _extract_zip(local, content)
        elif local is not None and not _is_git_repo(local):
            report.log.append(f"copying {local}")
            shutil.copytree(local, content, symlinks=True)
        else:
            url = str(local) if local is not None else source
            if local is None:
                _check_git_url(source)
            report.log.append(_git(["clone", "--depth", "1", "--", url, str(content)]))
        _check_tree(content)
        meta = read_meta(content)
        if install_dependencies and meta.dependencies:
            report.log.append(pip_install(meta.dependencies))
        os.replace(content, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.log.append(f"installed {name} into {target}")
    return report


def update(name: str, extensions_dir: Path, gate: ChangeGate, *, install_dependencies: bool = True) -> InstallReport:
    """`git pull --ff-only` in the extension's folder, then its dependencies again."""
    gate.check("update")
    target = Path(extensions_dir) / check_name(name)
    if not (target / ".git").exists():
        raise ExtensionError(f"{name} was not installed from git; reinstall it to update it")
    report = InstallReport(name, target, [_git(["-C", str(target), "pull", "--ff-only"])])
    _check_tree(target)
    meta = read_meta(target)
    if install_dependencies and meta.dependencies:
        report.log.append(pip_install(meta.dependencies))
    return report


def remove(name: str, extensions_dir: Path, gate: ChangeGate) -> Path:
    gate.check("remove")
    target = Path(extensions_dir) / check_name(name)
    if not target.is_dir() or target.is_symlink():
        raise ExtensionError(f"no extension folder named {name!r} in {extensions_dir}")
    shutil.rmtree(target)
    return target


def pip_install(requirements: tuple[str, ...] | list[str]) -> str:
    """Install into the running environment; the output is returned (and raised with on failure)."""
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *requirements]
    done = subprocess.run(cmd, capture_output=True, text=True)
    output = f"$ pip install {' '.join(requirements)}\n{done.stdout}{done.stderr}".rstrip()
    if done.returncode:
        raise ExtensionError(f"installing dependencies failed:\n{output}")
    return output


def _local_path(source: str) -> Path | None:
    """The path a file:// URL or a plain path names; None for a remote URL."""
    parsed = urlparse(source)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if not parsed.scheme or (len(parsed.scheme) == 1 and os.name == "nt"):  # C:\... on Windows
        return Path(source).expanduser()
    return None


def _is_git_repo(folder: Path) -> bool:
    return (folder / ".git").exists() or ((folder / "HEAD").is_file() and (folder / "objects").is_dir())


def _name_from(source: str) -> str:
    stem = PurePosixPath(urlparse(source).path.rstrip("/") or source.rstrip("/\\")).name
    for suffix in (".git", ".zip"):
        stem = stem.removesuffix(suffix)
    return stem


def _check_git_url(url: str) -> None:
    scheme = urlparse(url).scheme
    if scheme not in _GIT_SCHEMES and not url.startswith("git@"):
        raise ExtensionError(f"{url!r} is not a git URL, a .zip or a folder")
    if url.startswith("-"):
        raise ExtensionError(f"{url!r} is not a git URL")


def _git(args: list[str]) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, env=env, timeout=GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise ExtensionError("git is not installed; install git or use a .zip") from None
    except subprocess.TimeoutExpired:
        raise ExtensionError(f"git {args[0]} took longer than {GIT_TIMEOUT_S} s") from None
    output = f"$ git {' '.join(args)}\n{done.stdout}{done.stderr}".rstrip()
    if done.returncode:
        raise ExtensionError(f"git failed:\n{output}")
    return output


def _extract_zip(archive: Path, dest: Path) -> None:
    """Extract after checking every entry; a single top folder (GitHub's zips) is stripped."""
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            check_zip_entry(info)
            total += info.file_size
        if total > MAX_ZIP_BYTES:
            raise ExtensionError(f"{archive.name} unpacks to {total // 2**20} MiB; at most {MAX_ZIP_BYTES // 2**20} MiB")
        names = [PurePosixPath(i.filename) for i in infos]
        tops = {n.parts[0] for n in names if n.parts}
        strip = len(tops) == 1 and all(len(n.parts) > 1 or i.is_dir() for n, i in zip(names, infos))
        dest.mkdir(parents=True)
        for info, path in zip(infos, names):
            parts = path.parts[1:] if strip else path.parts
            if not parts:
                continue
            out = dest.joinpath(*parts)
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "xb") as dst:
                shutil.copyfileobj(src, dst)


def check_zip_entry(info: zipfile.ZipInfo) -> None:
    """Refuse absolute paths, drive letters, backslashes, `..` and symlinks."""
    name = info.filename
    path = PurePosixPath(name)
    mode = info.external_attr >> 16
    if (name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":")
            or ".." in path.parts):
        raise ExtensionError(f"refused: archive entry {name!r} points outside the extension's folder")
    if stat.S_ISLNK(mode):
        raise ExtensionError(f"refused: archive entry {name!r} is a symbolic link")


def _check_tree(folder: Path) -> None:
    """No symlink in the extension may lead outside it (a cloned repo or a copied folder can hold one)."""
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(folder):
        for entry in (*dirnames, *filenames):
            path = Path(dirpath) / entry
            if path.is_symlink():
                resolved = path.resolve()
                if resolved != root and root not in resolved.parents:
                    raise ExtensionError(f"refused: {path.relative_to(folder)} links outside the extension's folder")
