"""The worker: FIFO order, interrupt within a step, skip, task switches that reuse weights, unload."""

from app.engine.jobs import DONE, INTERRUPTED, QUEUED
from app.generation.request import validate_request


def _wait_for_step(job, step, timeout=60):
    """Follow the job's snapshots until it runs step `step`; fail if it ends first."""
    for progress in job.events(timeout=timeout):
        if progress.state == "running" and progress.step >= step:
            return
    raise AssertionError(f"job never reached step {step} (it is {job.state})")


def test_interrupt_stops_within_one_step_and_keeps_the_image(engine):
    job = engine.submit(validate_request(prompt="x", model="easel-demo-flux", width=256, height=256, steps=60,
                                         batch_count=3, save=False))
    _wait_for_step(job, 2)
    engine.interrupt()
    step_at_interrupt = job.progress.step
    result = job.result(timeout=120)
    assert job.state == INTERRUPTED and result.interrupted
    # the step running when interrupt came may finish; no other step runs
    assert job.progress.batch == 0 and job.progress.step <= step_at_interrupt + 1
    assert len(result.images) == 1  # the batch that was running is kept; later batches never start


def test_skip_ends_the_current_batch_and_goes_on(engine):
    job = engine.submit(validate_request(prompt="x", model="easel-demo-flux", width=128, height=128, steps=40,
                                         batch_count=2, save=False))
    _wait_for_step(job, 2)
    engine.skip()
    result = job.result(timeout=120)
    assert job.state == DONE and not result.interrupted
    assert len(result.images) == 2


def test_jobs_run_in_submission_order_and_report_queue_position(engine, hold_worker):
    with hold_worker(engine):  # the holding job runs: the three wait behind it, in order
        jobs = [engine.submit(validate_request(prompt=f"job {i}", model="easel-demo-flux", width=64, height=64,
                                               steps=8, save=False)) for i in range(3)]
        assert [engine.queue_position(j) for j in jobs] == [1, 2, 3]
        assert [j.state for j in jobs] == [QUEUED] * 3
    for j in jobs:
        j.result(timeout=120)
    # the worker stamps each job as it takes it and as it ends: one at a time, in submission order
    assert [j.started_at for j in jobs] == sorted(j.started_at for j in jobs)
    for before, after in zip(jobs, jobs[1:]):
        assert before.ended_at <= after.started_at
    assert all(j.progress.state == DONE for j in jobs) and engine.queue_position(jobs[0]) == -1


def test_progress_reports_every_step_with_an_eta(engine, hold_worker):
    with hold_worker(engine):  # listening starts before the job can run a step
        job = engine.submit(validate_request(prompt="x", model="easel-demo-sd3", width=64, height=64, steps=5,
                                             save=False))
        events = job.events(timeout=60)
    events = list(events)
    assert [e.state for e in events[:2]] == [QUEUED, "running"] and events[1].step == 0  # taken, loading
    stepping = [e for e in events if e.state == "running" and e.step]
    assert [e.step for e in stepping] == [1, 2, 3, 4, 5]
    assert all(e.eta_seconds is not None and e.eta_seconds >= 0 for e in stepping)
    assert events[-1].state == DONE and events[-1].fraction == 1.0


def test_previews_are_images_of_the_output_size(engine, hold_worker):
    with hold_worker(engine):
        job = engine.submit(validate_request(prompt="x", model="easel-demo-flux", width=128, height=64, steps=6,
                                             preview_every=2, save=False))
        events = job.events(timeout=60)
    previews = [e.preview for e in events if e.preview is not None]
    assert previews and all(p.size == (128, 64) for p in previews)


def test_task_switch_reuses_loaded_weights_without_casting(engine, checker_image):
    engine.generate(validate_request(prompt="x", model="easel-demo-flux", width=64, height=64, steps=1, save=False))
    manager = engine._get_manager()
    loaded = manager.get(engine.resolve_model("easel-demo-flux"))
    txt = loaded.pipeline_for("txt2img")
    dtype = txt.transformer.dtype
    inpaint = loaded.pipeline_for("inpaint")
    assert type(inpaint).__name__ == "FluxInpaintPipeline"
    assert inpaint.transformer is txt.transformer and inpaint.vae is txt.vae
    assert inpaint.text_encoder_2 is txt.text_encoder_2
    assert txt.transformer.dtype == dtype


def test_unload_frees_the_model_and_the_next_job_loads_it_again(engine):
    engine.generate(validate_request(prompt="x", model="easel-demo-sd3", width=64, height=64, steps=1, save=False))
    assert "easel-demo-sd3" in engine.loaded_models
    assert "easel-demo-sd3" in engine.unload("easel-demo-sd3")
    assert "easel-demo-sd3" not in engine.loaded_models
    again = engine.generate(validate_request(prompt="x", model="easel-demo-sd3", width=64, height=64, steps=1, save=False))
    assert again.images and "easel-demo-sd3" in engine.loaded_models
