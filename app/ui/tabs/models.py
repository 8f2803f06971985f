"""Models tab: the catalog as a table, what each model still needs, and its memory plan."""

from __future__ import annotations

import gradio as gr

from app.ui.context import UIContext

HEADERS = ["Name", "Family", "Variant", "Format", "Size", "Status", "Missing parts", "Memory plan"]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def catalog_rows(context: UIContext, refresh: bool = False) -> list[list[str]]:
    rows = []
    for m in context.engine.models(refresh):
        plan = context.engine.memory_plan(m).describe() if m.ready else ""
        rows.append([m.title, m.family or "?", m.variant or "?", m.format, _size(m.size_bytes), m.status,
                     "; ".join(m.problems), plan])
    return rows


def build_models_tab(context: UIContext) -> dict:
    device = gr.Markdown("", elem_id="models_device")
    refresh = gr.Button("↻ Refresh", size="sm", elem_id="models_refresh", variant="secondary")
    table = gr.Dataframe(headers=HEADERS, value=[], interactive=False, wrap=True, elem_id="models_table",
                         column_widths=["22%", "6%", "10%", "8%", "7%", "7%", "18%", "22%"])
    folders = gr.Markdown(f"Models folder: `{context.settings.models_dir}`", elem_id="models_folders")

    def load(refresh_scan: bool = False):
        errors = getattr(context.engine.catalog(), "errors", [])
        notes = "".join(f"\n- ⚠️ {e}" for e in errors)
        return {table: catalog_rows(context, refresh_scan),
                device: f"**Device:** {context.engine.device.describe()}{notes}"}

    refresh.click(lambda: load(True), outputs=[table, device], api_name="models_refresh")
    return {"table": table, "device": device, "load": load}
