"""The Extensions tab, and the hosts for extensions' tabs and accordions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from app.extensions.actions import ExtensionActions
from app.extensions.gate import ChangeGate
from app.extensions.index import INDEX_URLS
from app.extensions.manager import ExtensionManager
from app.extensions.meta import ExtensionError

HEADERS = ["name", "version", "enabled", "status", "error", "source"]


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


def build_extensions_tab(manager: ExtensionManager, gate: ChangeGate, *,
                         index_urls: tuple[str, ...] = INDEX_URLS) -> dict[str, Any]:
    """The table, enable/disable, install/update/remove (with a confirmation) and the index browser.
    Every button acts through `gate` (see actions.py); when it is closed they are greyed out too."""
    actions = ExtensionActions(manager, gate, index_urls)
    open_ = gate.allow_changes
    table = gr.Dataframe(value=extension_rows(manager), headers=HEADERS, interactive=False, wrap=True,
                         elem_id="extensions_table")
    names = gr.Dropdown(choices=list(manager.records), label="Extension", elem_id="extensions_name",
                        allow_custom_value=True)
    with gr.Row():
        enable = gr.Button("Enable", size="sm", interactive=open_, elem_id="extensions_enable")
        disable = gr.Button("Disable", size="sm", interactive=open_, elem_id="extensions_disable")
        update = gr.Button("Update (git pull)", size="sm", interactive=open_, elem_id="extensions_update")
        remove = gr.Button("Remove…", size="sm", variant="stop", interactive=open_, elem_id="extensions_remove")
    with gr.Row(visible=False) as confirm_row:
        confirm_text = gr.Markdown()
        confirm = gr.Button("Yes, delete it", variant="stop", size="sm", elem_id="extensions_confirm_remove")
        cancel = gr.Button("Cancel", size="sm")
    if not open_:
        gr.Markdown(f"🔒 {gate.reason}", elem_id="extensions_locked")
    with gr.Row():
        source = gr.Textbox(label="Install from a git URL, a .zip path or a folder", scale=4,
                            interactive=open_, elem_id="extensions_source")
        install = gr.Button("Install", scale=1, interactive=open_, elem_id="extensions_install")
    log = gr.Textbox(label="Output", lines=8, max_lines=30, interactive=False, elem_id="extensions_log")
    with gr.Accordion("Available extensions (index)", open=False):
        index_url = gr.Dropdown(list(index_urls), value=index_urls[0] if index_urls else None,
                                label="Index (A1111 index.json)", interactive=open_, elem_id="extensions_index_url")
        load = gr.Button("Load index", size="sm", interactive=open_, elem_id="extensions_load_index")
        index_table = gr.Dataframe(headers=["name", "url", "description", "tags"], interactive=False, wrap=True)

    def refreshed(message: str):
        return extension_rows(manager), gr.update(choices=list(manager.records)), message

    def shown(action, *args):
        """Run an action; its text, or the error, goes to the output box."""
        try:
            return refreshed(action(*args))
        except ExtensionError as exc:
            return refreshed(f"error: {exc}")

    def ask_remove(name: str):
        if not name:
            raise gr.Error("Pick an extension first.")
        return gr.update(visible=True), f"Delete the folder of **{name}** and everything in it?"

    def do_load(url: str):
        try:
            entries = actions.load_index(url)
        except ExtensionError as exc:
            raise gr.Error(str(exc)) from None
        return [[e.name, e.url, e.description, ", ".join(e.tags)] for e in entries]

    outputs = [table, names, log]
    wiring = {"api_visibility": "private"}  # UI wiring, not an API: kept off /gradio_api/info and clients
    enable.click(lambda n: shown(actions.set_enabled, n, True), inputs=names, outputs=outputs, **wiring)
    disable.click(lambda n: shown(actions.set_enabled, n, False), inputs=names, outputs=outputs, **wiring)
    install.click(lambda s: shown(actions.install, s), inputs=source, outputs=outputs, **wiring)
    update.click(lambda n: shown(actions.update, n), inputs=names, outputs=outputs, **wiring)
    remove.click(ask_remove, inputs=names, outputs=[confirm_row, confirm_text], **wiring)
    confirm.click(lambda n: (*shown(actions.remove, n), gr.update(visible=False)), inputs=names,
                  outputs=[*outputs, confirm_row], **wiring)
    cancel.click(lambda: gr.update(visible=False), outputs=confirm_row, **wiring)
    load.click(do_load, inputs=index_url, outputs=index_table, **wiring)
    return {"table": table, "names": names, "log": log, "install": install, "source": source, "enable": enable,
            "disable": disable, "update": update, "remove": remove, "confirm_remove": confirm, "load_index": load,
            "index_url": index_url, "refresh": lambda: refreshed("")}
