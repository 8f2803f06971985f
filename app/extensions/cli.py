"""`python -m app ext list|install|enable|disable|update|remove|index`.

The command line runs on this machine, so it is never gated (see gate.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from app.extensions import install as installer
from app.extensions.gate import LOCAL
from app.extensions.index import load_index
from app.extensions.manager import EXTENSIONS_DIR, ExtensionManager
from app.extensions.meta import ExtensionError


def add_ext_parser(subparsers, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    ext = subparsers.add_parser("ext", parents=parents, help="list, install, enable, disable, update, remove extensions")
    actions = ext.add_subparsers(dest="ext_action", required=True)
    actions.add_parser("list", help="installed extensions, enabled or not, and their errors")
    add = actions.add_parser("install", help="install from a git URL, a .zip or a folder")
    add.add_argument("source")
    add.add_argument("--name", help="folder name (default: from the source)")
    add.add_argument("--no-deps", action="store_true", help="do not pip-install the extension's dependencies")
    for action, text in (("enable", "enable (at the next start)"), ("disable", "disable"),
                         ("update", "git pull an extension"), ("remove", "delete an extension's folder")):
        p = actions.add_parser(action, help=text)
        p.add_argument("name")
        if action == "remove":
            p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    idx = actions.add_parser("index", help="list the extensions of an index.json (A1111 format)")
    idx.add_argument("url")
    return ext


def ext_command(settings, args: argparse.Namespace, *, confirm=input) -> int:
    folder = Path(args.extensions_dir or EXTENSIONS_DIR)
    try:
        return _run(settings, args, folder, confirm)
    except ExtensionError as exc:
        print(f"error: {exc}")
        return 2


def _run(settings, args, folder: Path, confirm) -> int:
    action = args.ext_action
    if action == "index":
        for entry in load_index(args.url, allowed=None):  # any http(s) index: typed on this machine
            print(f"{entry.name}\t{entry.url}\t{entry.description}")
        return 0
    if action == "install":
        report = installer.install(args.source, folder, LOCAL, name=args.name, install_dependencies=not args.no_deps)
        print(report.text)
        return 0
    manager = ExtensionManager(folder, settings.settings_file, entry_points=action == "list").load()
    if action == "list":
        for r in manager.records.values():
            line = f"{r.name}\t{r.meta.version or '-'}\t{r.status}"
            print(line + (f"\t{'; '.join(r.errors)}" if r.errors else ""))
        if not manager.records:
            print(f"no extensions in {folder}")
        return 0
    if action in ("enable", "disable"):
        manager.set_enabled(args.name, action == "enable")
        print(f"{args.name} {action}d (takes effect at the next start)")
        return 0
    if action == "update":
        print(installer.update(args.name, folder, LOCAL).text)
        return 0
    if action == "remove":
        manager.record(args.name)
        if not args.yes and confirm(f"Delete {folder / args.name}? [y/N] ").strip().lower() not in ("y", "yes"):
            print("not removed")
            return 1
        print(f"removed {installer.remove(args.name, folder, LOCAL)}")
        return 0
    return 1
