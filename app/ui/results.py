"""The right-hand column of a generation tab: progress, live preview, gallery, infotext, send-to buttons,
Interrupt and Skip. `stream_job` runs a request through the engine and yields updates for it.

A waiting tab holds no thread: `stream_job` is an async generator that awaits the job's next change
(a future the worker resolves), and sends at most one update per UPDATE_SECONDS.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr

from app.engine.jobs import DONE, FAILED, INTERRUPTED, QUEUED, JobNotFound
from app.errors import EaselError
from app.ui.context import UIContext

UPDATE_SECONDS = 0.2  # at most five progress updates a second per tab


@dataclass
class ResultsPanel:
    progress: gr.HTML
    gallery: gr.Gallery
    generate: gr.Button
    interrupt: gr.Button
    skip: gr.Button
    infotext: gr.Textbox
    send_img2img: gr.Button
    send_inpaint: gr.Button
    send_upscale: gr.Button
    job_id: gr.State
    paths: gr.State  # saved file paths of the gallery, in order
    infotexts: gr.State
    seeds: gr.State
    selected: gr.State  # index of the selected gallery image
    name: str = ""  # the tab's name: the queue view shows it as who asked

    @property
    def source(self) -> str:
        return f"ui:{self.name}" if self.name else "ui"


def build_results_panel(prefix: str) -> ResultsPanel:
    with gr.Row(elem_classes=["generate-row"]):
        generate = gr.Button("Generate", variant="primary", size="lg", elem_id=f"{prefix}_generate", scale=3)
        interrupt = gr.Button("Interrupt", elem_id=f"{prefix}_interrupt", scale=1, min_width=80)
        skip = gr.Button("Skip", elem_id=f"{prefix}_skip", scale=1, min_width=60)
    progress = gr.HTML(progress_html(None), elem_id=f"{prefix}_progress", elem_classes=["job-progress"])
    gallery = gr.Gallery(label="Output", format="png", columns=2, height=520, preview=True, object_fit="contain",
                         interactive=False, elem_id=f"{prefix}_gallery", show_label=False)
    with gr.Row(elem_classes=["send-row"]):
        send_img2img = gr.Button("Send to img2img", size="sm", elem_id=f"{prefix}_send_img2img")
        send_inpaint = gr.Button("Send to inpaint", size="sm", elem_id=f"{prefix}_send_inpaint")
        send_upscale = gr.Button("Send to upscale", size="sm", elem_id=f"{prefix}_send_upscale")
    infotext = gr.Textbox(label="Generation parameters", lines=4, interactive=False, buttons=["copy"],
                          elem_id=f"{prefix}_infotext")
    panel = ResultsPanel(progress, gallery, generate, interrupt, skip, infotext, send_img2img, send_inpaint,
                         send_upscale, gr.State(None), gr.State([]), gr.State([]), gr.State([]), gr.State(0), prefix)
    gallery.select(_on_select, inputs=[panel.infotexts], outputs=[infotext, panel.selected], show_progress="hidden",
                   api_visibility="private")
    return panel


def _on_select(infotexts: list[str], evt: gr.SelectData):
    """The selected picture's infotext; a detected map after the pictures shows the first picture's."""
    index = evt.index if isinstance(evt.index, int) else 0
    if not infotexts:
        return "", index
    return infotexts[index if 0 <= index < len(infotexts) else 0], index


def wire_cancel_buttons(panel: ResultsPanel, context: UIContext) -> None:
    """Interrupt / Skip act on this browser tab's own job (by its id), never on another tab's."""

    def cancel(job_id, skip: bool) -> None:
        try:
            context.engine.cancel(job_id, skip=skip)
        except JobNotFound:  # finished already (or nothing generated yet): nothing to stop
            pass

    def interrupt(job_id):
        cancel(job_id, skip=False)

    def skip(job_id):
        cancel(job_id, skip=True)

    panel.interrupt.click(interrupt, inputs=[panel.job_id], outputs=None, show_progress="hidden", queue=False,
                          api_visibility="private")
    panel.skip.click(skip, inputs=[panel.job_id], outputs=None, show_progress="hidden", queue=False,
                     api_visibility="private")


def stream_job(context: UIContext, panel: ResultsPanel, make_request: Callable[[dict], Any]):
    """An async generator event handler: validate, submit, then yield progress/preview until the job ends,
    awaiting each change of the job (no thread waits)."""

    async def run(data: dict):
        try:
            request = make_request(data)
            job = context.engine.submit(request, source=panel.source)
        except EaselError as exc:
            raise gr.Error(str(exc), duration=8) from None
        yield {panel.job_id: job.id, panel.progress: progress_html(job, context.engine.queue_position(job))}
        last_preview = None
        async for _ in job_changes(job):
            update = {panel.progress: progress_html(job, context.engine.queue_position(job))}
            preview = job.latest_preview
            if preview is not None and preview is not last_preview:
                last_preview = preview
                update[panel.gallery] = [(preview, "preview")]
            yield update
        try:
            result = job.result()
        except EaselError as exc:
            yield {panel.progress: progress_html(job, -1)}
            raise gr.Error(str(exc), duration=10) from None
        job.release()  # the gallery below holds the images now
        paths = [str(p) if p else "" for p in result.paths]
        # the saved file where there is one (downloads keep the infotext), else the image in memory
        items = [(paths[i] if i < len(paths) and paths[i] else im, f"seed {s}")
                 for i, (im, s) in enumerate(zip(result.images, result.seeds))]
        items += list(zip(result.extra_images, detected_map_captions(job.request, len(result.extra_images))))
        notes = "".join(f"<div class='warn'>{html.escape(w)}</div>" for w in result.warnings)
        yield {
            panel.gallery: items,
            panel.paths: paths,
            panel.infotexts: list(result.infotexts),
            panel.seeds: list(result.seeds),
            panel.selected: 0,
            panel.infotext: result.infotexts[0] if result.infotexts else "",
            panel.progress: progress_html(job, -1, seconds=result.seconds, count=len(result.images)) + notes,
        }

    return run


def detected_map_captions(request, count: int) -> list[str]:
    """Captions of the detected maps that follow the pictures in the gallery (as Forge shows them): the
    units that saved one, numbered as the infotext's "ControlNet N". The maps come after every picture,
    so the gallery's first len(images) items stay aligned with the infotexts, seeds and paths."""
    units = [a for a in getattr(request, "addons", ()) if a.kind == "controlnet"]
    names = [f"ControlNet {n} · detected map" for n, a in enumerate(units) if a.active and a.save_detected_map]
    return names if len(names) == count else ["detected map"] * count


async def job_changes(job):
    """Yields each time `job` changed, at most once per UPDATE_SECONDS, until it finishes (no thread waits)."""
    seen = job.version
    while not job.finished:
        seen = await job.next_change(seen)
        if job.finished:
            return
        yield
        await job.wait(UPDATE_SECONDS)  # a pause between updates; ends at once when the job does


def progress_html(job, position: int = -1, *, seconds: float | None = None, count: int | None = None) -> str:
    if job is None:
        return "<div class='progress idle'>Ready</div>"
    p = job.progress
    if p.state == QUEUED:
        ahead = max(0, position)
        return f"<div class='progress queued'>Queued · {ahead} job(s) ahead</div>"
    if not p.total_steps and p.state not in (DONE, INTERRUPTED, FAILED):
        return "<div class='progress running'><span>Starting · loading the model</span></div>"
    if p.state in (DONE, INTERRUPTED, FAILED):
        word = {DONE: "Done", INTERRUPTED: "Interrupted", FAILED: "Failed"}[p.state]
        extra = f" · {count} image(s) in {seconds:.1f} s" if seconds is not None else ""
        msg = f" · {html.escape(p.message)}" if p.message else ""
        return f"<div class='progress {p.state}'>{word}{extra}{msg}</div>"
    pct = int(round(p.fraction * 100))
    eta = f" · ETA {p.eta_seconds:.1f} s" if p.eta_seconds is not None else ""
    return (f"<div class='progress running'><div class='bar' style='width:{pct}%'></div>"
            f"<span>{html.escape(p.where)} · {pct}%{eta}</span></div>")
