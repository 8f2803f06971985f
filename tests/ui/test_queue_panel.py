"""The Queue panel's listing and Cancel, and a tab's job streamed by an async generator that holds no thread."""

import asyncio
import threading

import gradio as gr
import pytest

from app.engine.engine import Engine
from app.generation.request import validate_request
from app.settings import Settings
from app.ui.context import UIContext
from app.ui.queue_panel import COLUMNS, build_queue_panel, cancel_job, job_choices, queue_rows
from app.ui.results import build_results_panel, stream_job

TINY = dict(prompt="a red circle", model="easel-demo-flux", width=64, height=64, steps=2, save=False)


@pytest.fixture(scope="module")
def engine(demo_models_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("queue-ui")
    eng = Engine(Settings(models_dir=demo_models_dir, outputs_dir=out, device="cpu", settings_file=out / "s.json"))
    yield eng
    eng.close()


def test_the_panel_lists_jobs_of_every_front_end_and_cancels_the_chosen_one(engine, hold_worker):
    with hold_worker(engine) as holder:
        mine = engine.submit(validate_request(**TINY), source="ui:inpaint")
        theirs = engine.submit(validate_request(**TINY), source="api")
        rows = queue_rows(engine)
        assert [r[0] for r in rows] == [holder.id, mine.id, theirs.id]
        by_id = {r[0]: dict(zip(COLUMNS, r)) for r in rows}
        assert by_id[mine.id]["who"] == "UI · inpaint" and by_id[theirs.id]["who"] == "API"
        assert by_id[mine.id]["prompt"] == "a red circle" and by_id[mine.id]["state"] == "queued"
        assert by_id[mine.id]["model"] == "easel-demo-flux" and by_id[mine.id]["progress"] == "0%"
        assert [value for _, value in job_choices(engine)] == [holder.id, mine.id, theirs.id]

        assert cancel_job(engine, mine.id) == f"Job #{mine.id} (txt2img) cancelled."
        assert [r[0] for r in queue_rows(engine)] == [holder.id, theirs.id]
        assert cancel_job(engine, mine.id) == f"Job #{mine.id} is no longer queued or running."
        assert cancel_job(engine, None) == "Choose a job to cancel."
    assert theirs.result(timeout=120).images  # only the chosen job was cancelled


def test_the_panel_builds(engine):
    with gr.Blocks():
        panel = build_queue_panel(UIContext(engine=engine, settings=engine.settings))
    assert panel.table.headers == COLUMNS


async def _collect(run, data):
    return [update async for update in run(data)]


def test_a_tab_streams_its_job_and_names_itself_as_who_asked(engine):
    with gr.Blocks():
        panel = build_results_panel("txt2img")
    context = UIContext(engine=engine, settings=engine.settings)
    run = stream_job(context, panel, lambda data: validate_request(**TINY, seed=7))
    updates = asyncio.run(_collect(run, {}))
    job = engine.job(updates[0][panel.job_id])
    assert job.source == "ui:txt2img"
    final = updates[-1]
    assert "Done" in final[panel.progress] and "1 image(s)" in final[panel.progress]
    assert len(final[panel.gallery]) == 1 and final[panel.seeds] == [7]
    assert job.result(0).images == []  # delivered to the gallery: the job keeps only the metadata


def test_waiting_tabs_hold_no_thread(engine):
    with gr.Blocks():
        panels = [build_results_panel(f"tab{i}") for i in range(20)]
    context = UIContext(engine=engine, settings=engine.settings)
    release = threading.Event()
    engine.submit_call(lambda: release.wait(120), task="hold")

    async def scenario():
        streams = [asyncio.create_task(_collect(stream_job(context, p, lambda d: validate_request(**TINY)), {}))
                   for p in panels]
        await asyncio.sleep(0)  # one turn of the loop: every stream has submitted and awaits its job
        threads = threading.active_count()
        release.set()
        return threads, await asyncio.gather(*streams)

    before = threading.active_count()
    threads, results = asyncio.run(scenario())
    assert threads <= before + 2
    assert all("Done" in updates[-1][p.progress] for updates, p in zip(results, panels))
