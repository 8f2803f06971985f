"""The Extensions tab, and the hosts for extensions' tabs and accordions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from app.extensions import install as installer
from app.extensions.gate import ChangeGate
from app.extensions.index import load_index
from app.extensions.manager import ExtensionManager
from app.extensions.meta import ExtensionError

HEADERS = ["name", "version", "enabled", "status", "error", "source"]
RESTART_NOTE = "Restart Easel to apply changes to extensions."


@dataclass(frozen=True)
class TabHandle:
    """What register_ui_sections gets: the tab's name, its components by field name, the facade."""

    name: str
    components: Mapping[str, Any] = field(default_factory=dict)
    easel: Any = None


def generation_tab_handle(name: str, tab, model, easel) -> TabHandle:
    """The handle of a generation tab (`app.ui.tabs.generation.GenerationTab`): every control by its
    field name, plus the top bar's model dropdown and the tab's gallery."""
    from dataclasses import fields

    components = {f.name: getattr(tab.controls, f.name) for f in fields(tab.controls)}
    components.update(model=model, gallery=tab.results.gallery, **tab.extra)
    return TabHandle(name, components, easel)


def extension_rows(manager: ExtensionManager) -> list[list[Any]]:
    rows = [[r.name, r.meta.version, r.enabled, r.status, "; ".join(r.errors), r.source]
            for r in manager.records.values()]
    if manager.extensions_dir.is_dir():  # installed since this start
        for folder in sorted(manager.extensions_dir.iterdir()):
            if folder.is_dir() and not folder.name.startswith((".", "_")) and folder.name not in manager.records:
                rows.append([folder.name, "", True, "installed: restart to load", "", str(folder)])
    return rows


def build_ui_sections(manager: ExtensionManager, tab: TabHandle) -> None:
    """One closed accordion per registered section; a section whose build raises shows its error."""
    for ext, title, build in manager.ui_sections(tab):
        with gr.Accordion(title, open=False, elem_id=f"ext_{ext}_{tab.name}"):
            try:
                build()
            except Exception as exc:
                manager.fail(ext, f"building {title!r} failed: {type(exc).__name__}: {exc}", exc)
                gr.Markdown(f"⚠️ extension {ext}: {title} could not be built ({exc})")


def build_extension_tabs(manager: ExtensionManager, easel) -> None:
    """Top-level tabs registered by extensions (call inside the app's `gr.Tabs`)."""
    for ext, title, build in manager.ui_tabs(easel):
        with gr.Tab(title, elem_id=f"tab_ext_{ext}"):
            try:
                build()
            except Exception as exc:
                manager.fail(ext, f"building tab {title!r} failed: {type(exc).__name__}: {exc}", exc)
                gr.Markdown(f"⚠️ extension {ext}: this tab could not be built ({exc})")


def build_extensions_tab(manager: ExtensionManager, *, allow_changes: bool, reason: str) -> dict[str, Any]:
    """The table, enable/disable, install/update/remove (with a confirmation) and the index browser."""
    gate = ChangeGate(allow_changes, reason)
    table = gr.Dataframe(value=extension_rows(manager), headers=HEADERS, interactive=False, wrap=True,
                         elem_id="extensions_table")
    names = gr.Dropdown(choices=list(manager.records), label="Extension", elem_id="extensions_name",
                        allow_custom_value=True)
    with gr.Row():
        enable = gr.Button("Enable", size="sm")
        disable = gr.Button("Disable", size="sm")
        update = gr.Button("Update (git pull)", size="sm", interactive=allow_changes)
        remove = gr.Button("Remove…", size="sm", variant="stop", interactive=allow_changes)
    with gr.Row(visible=False) as confirm_row:
        confirm_text = gr.Markdown()
        confirm = gr.Button("Yes, delete it", variant="stop", size="sm")
        cancel = gr.Button("Cancel", size="sm")
    if not allow_changes:
        gr.Markdown(f"🔒 {reason}", elem_id="extensions_locked")
    with gr.Row():
        source = gr.Textbox(label="Install from a git URL, a .zip path or a folder", scale=4,
                            interactive=allow_changes, elem_id="extensions_source")
        install = gr.Button("Install", scale=1, interactive=allow_changes)
    log = gr.Textbox(label="Output", lines=8, max_lines=30, interactive=False, elem_id="extensions_log")
    with gr.Accordion("Available extensions (index)", open=False):
        index_url = gr.Textbox(label="Index URL (A1111 index.json)", placeholder="https://…/index.json")
        load = gr.Button("Load index", size="sm")
        index_table = gr.Dataframe(headers=["name", "url", "description", "tags"], interactive=False, wrap=True)

    def refreshed(message: str):
        return extension_rows(manager), gr.update(choices=list(manager.records)), message

    def set_enabled(name: str, enabled: bool):
        try:
            manager.set_enabled(name or "", enabled)
        except ExtensionError as exc:
            raise gr.Error(str(exc)) from None
        return refreshed(f"{name} {'enabled' if enabled else 'disabled'}. {RESTART_NOTE}")

    def change(action, target: str):
        """install or update through the gate; the outcome (or the refusal) is shown in the output box."""
        try:
            report = action(target or "", manager.extensions_dir, gate)
        except ExtensionError as exc:
            return refreshed(f"error: {exc}")
        return refreshed(f"{report.text}\n{RESTART_NOTE}")

    def do_install(src: str):
        return change(installer.install, src)

    def do_update(name: str):
        return change(installer.update, name)

    def ask_remove(name: str):
        if not name:
            raise gr.Error("Pick an extension first.")
        return gr.update(visible=True), f"Delete the folder of **{name}** and everything in it?"

    def do_remove(name: str):
        try:
            path = installer.remove(name or "", manager.extensions_dir, gate)
        except ExtensionError as exc:
            return (*refreshed(f"error: {exc}"), gr.update(visible=False))
        return (*refreshed(f"removed {path}. {RESTART_NOTE}"), gr.update(visible=False))

    def do_load(url: str):
        try:
            entries = load_index(url or "")
        except ExtensionError as exc:
            raise gr.Error(str(exc)) from None
        return [[e.name, e.url, e.description, ", ".join(e.tags)] for e in entries]

    outputs = [table, names, log]
    quiet = {"api_visibility": "undocumented"}
    enable.click(lambda n: set_enabled(n, True), inputs=names, outputs=outputs, **quiet)
    disable.click(lambda n: set_enabled(n, False), inputs=names, outputs=outputs, **quiet)
    install.click(do_install, inputs=source, outputs=outputs, **quiet)
    update.click(do_update, inputs=names, outputs=outputs, **quiet)
    remove.click(ask_remove, inputs=names, outputs=[confirm_row, confirm_text], **quiet)
    confirm.click(do_remove, inputs=names, outputs=[*outputs, confirm_row], **quiet)
    cancel.click(lambda: gr.update(visible=False), outputs=confirm_row, **quiet)
    load.click(do_load, inputs=index_url, outputs=index_table, **quiet)
    return {"table": table, "names": names, "log": log, "install": install, "source": source,
            "refresh": lambda: refreshed("")}
