"""The Queue accordion: every queued and running job (from any tab or the API), and a Cancel button.

The table is a snapshot (Refresh reloads it); pick a job in the dropdown and Cancel it. A running job
stops at its next step and keeps what it made; a queued one leaves the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from app.engine.jobs import JobNotFound
from app.engine.queue_view import QueueEntry, queue_entries
from app.ui.context import UIContext

COLUMNS = ["id", "task", "state", "prompt", "model", "progress", "who"]


@dataclass
class QueuePanel:
    table: gr.Dataframe
    job: gr.Dropdown
    cancel: gr.Button
    refresh: gr.Button
    status: gr.Markdown


def queue_rows(engine) -> list[list]:
    return [_row(entry) for entry in queue_entries(engine)]


def _row(entry: QueueEntry) -> list:
    progress = f"{entry.progress:.0%}" + (f" · step {entry.step}/{entry.total_steps}" if entry.total_steps else "")
    return [entry.id, entry.task, entry.state, entry.prompt, entry.model, progress, entry.who]


def job_choices(engine) -> list[tuple[str, int]]:
    """(label, job id) for the dropdown."""
    return [(f"#{e.id} {e.task} · {e.who} · {e.prompt[:30] or e.model}", e.id) for e in queue_entries(engine)]


def cancel_job(engine, job_id) -> str:
    """Cancel `job_id`; the message the panel shows."""
    if job_id is None:
        return "Choose a job to cancel."
    try:
        job = engine.cancel(int(job_id))
    except JobNotFound:
        return f"Job #{job_id} is no longer queued or running."
    return f"Job #{job.id} ({job.task}) cancelled."


def build_queue_panel(context: UIContext) -> QueuePanel:
    engine = context.engine
    with gr.Accordion("Queue", open=False, elem_id="queue_panel"):
        table = gr.Dataframe(headers=COLUMNS, value=[], interactive=False, wrap=True, elem_id="queue_table")
        with gr.Row():
            job = gr.Dropdown(label="Job", choices=[], value=None, scale=3, elem_id="queue_job")
            cancel = gr.Button("Cancel job", variant="stop", scale=1, elem_id="queue_cancel")
            refresh = gr.Button("Refresh", scale=1, elem_id="queue_refresh")
        status = gr.Markdown(elem_id="queue_status")
    panel = QueuePanel(table, job, cancel, refresh, status)

    def on_refresh():
        return _listing(engine)

    def on_cancel(job_id):
        return (cancel_job(engine, job_id), *_listing(engine))

    refresh.click(on_refresh, outputs=[table, job], show_progress="hidden", queue=False,
                  api_visibility="private")
    cancel.click(on_cancel, inputs=[job], outputs=[status, table, job], show_progress="hidden", queue=False,
                 api_visibility="private")
    return panel


def _listing(engine):
    return queue_rows(engine), gr.update(choices=job_choices(engine), value=None)
