"""Per-job control, the engine's door, the worker's resilience and bounded job memory.

Jobs are held in the queue by a running job that waits for an Event (the `hold_worker` fixture), never
by sleeping.
"""

import asyncio
import threading

import pytest

from app.engine.engine import RECENT_JOBS_KEPT
from app.engine.jobs import DONE, EVENTS_KEPT, FAILED, INTERRUPTED, QUEUED, JobNotFound
from app.engine.queue_view import queue_entries
from app.errors import EaselError, Interrupted, InvalidRequest, OutOfMemory
from app.generation.request import validate_request

TINY = dict(prompt="a red circle", model="easel-demo-flux", width=64, height=64, steps=2, save=False)


def tiny(**more):
    return validate_request(**{**TINY, **more})


def _wait_for_step(job, step, timeout=60):
    for progress in job.events(timeout=timeout):
        if progress.state == "running" and progress.step >= step:
            return
    raise AssertionError(f"job never reached step {step} (it is {job.state})")


# -- per-job control --------------------------------------------------------------------------------------
def test_cancel_takes_one_queued_job_out_and_the_others_run(engine, hold_worker):
    with hold_worker(engine):
        first, second = engine.submit(tiny(seed=1)), engine.submit(tiny(seed=2))
        assert engine.cancel(first.id) is first
        assert first.finished and first.state == INTERRUPTED  # ends now, not when the worker reaches it
        assert first.result(0).images == [] and first.result(0).interrupted
        assert engine.queue_position(second) == 1
        assert [j.id for j in engine.queued_jobs] == [second.id]
    assert len(second.result(timeout=120).images) == 1 and second.state == DONE


def test_cancel_of_an_unknown_or_finished_job_names_the_id(engine):
    with pytest.raises(JobNotFound, match="987654"):
        engine.cancel(987654)
    done = engine.submit(tiny())
    done.result(timeout=120)
    with pytest.raises(JobNotFound, match=str(done.id)):
        engine.cancel(done.id)


def test_interrupt_stops_the_running_job_only(engine):
    running = engine.submit(tiny(width=128, height=128, steps=60, batch_count=2))
    waiting = engine.submit(tiny(seed=5))
    _wait_for_step(running, 1)
    engine.interrupt()  # A1111's /interrupt: the current job, not every user's queued ones
    assert running.result(timeout=120).interrupted and running.state == INTERRUPTED
    result = waiting.result(timeout=120)
    assert waiting.state == DONE and len(result.images) == 1 and not result.interrupted


def test_cancel_with_skip_ends_the_batch_of_that_job(engine):
    job = engine.submit(tiny(width=128, height=128, steps=40, batch_count=2))
    _wait_for_step(job, 1)
    engine.cancel(job.id, skip=True)
    result = job.result(timeout=120)
    assert job.state == DONE and len(result.images) == 2 and not result.interrupted


def test_queue_view_lists_running_then_queued_with_who_asked(engine, hold_worker):
    long_prompt = "a very long prompt " * 20
    with hold_worker(engine) as holder:
        ui_job = engine.submit(tiny(prompt=long_prompt), source="ui:txt2img")
        api_job = engine.submit(tiny(), source="api")
        entries = queue_entries(engine)
        assert [e.id for e in entries] == [holder.id, ui_job.id, api_job.id]
        assert [e.position for e in entries] == [0, 1, 2]
        assert entries[0].state == "running" and entries[1].state == QUEUED
        assert (entries[1].who, entries[2].who) == ("UI · txt2img", "API")
        assert entries[1].model == "easel-demo-flux" and entries[1].task == "txt2img"
        assert entries[1].prompt.startswith("a very long prompt") and len(entries[1].prompt) <= 80
        assert entries[1].prompt.endswith("…")
    api_job.result(timeout=120)
    assert all(e.id not in (ui_job.id, api_job.id) for e in queue_entries(engine))


def test_a_model_load_is_a_job_in_the_queue_and_can_be_cancelled_while_it_waits(engine, hold_worker):
    outcome = {}

    def load():
        try:
            engine.load("easel-demo-sd3", source="api")
        except EaselError as exc:
            outcome["error"] = exc

    with hold_worker(engine):
        caller = threading.Thread(target=load)
        caller.start()
        assert engine.wait_for_queue(lambda jobs: any(j.task == "load" for j in jobs), timeout=30)
        (entry,) = [e for e in queue_entries(engine) if e.task == "load"]
        assert (entry.model, entry.who, entry.state) == ("easel-demo-sd3", "API", QUEUED)
        engine.cancel(entry.id)
        caller.join(30)
    assert isinstance(outcome.get("error"), Interrupted) and "cancelled" in str(outcome["error"])


def test_a_job_queued_behind_many_finished_ones_is_never_forgotten(engine, hold_worker):
    with hold_worker(engine):
        kept = engine.submit(tiny(seed=9))
        for _ in range(RECENT_JOBS_KEPT + 8):  # finished jobs beyond what the lookup keeps
            engine.cancel(engine.submit(tiny()).id)
        assert engine.job(kept.id) is kept
        engine.cancel(kept.id)  # found by id, so the UI's Interrupt still works on it
        assert kept.state == INTERRUPTED


# -- the engine's door ------------------------------------------------------------------------------------
@pytest.mark.parametrize("update, field", [({"steps": 0}, "steps"), ({"width": 100}, "width"),
                                           ({"height": 100000}, "height"), ({"batch_size": 10000}, "batch_size"),
                                           ({"cfg_scale": float("nan")}, "cfg_scale")])
def test_submit_validates_requests_built_without_validation(engine, update, field):
    request = tiny().model_copy(update=update)  # what extensions do: model_copy skips pydantic's checks
    queued_before = len(engine.active_jobs)
    with pytest.raises(InvalidRequest) as caught:
        engine.submit(request)
    assert caught.value.field == field
    assert len(engine.active_jobs) == queued_before  # nothing was queued


def test_submit_refuses_what_is_not_a_request(engine):
    with pytest.raises(InvalidRequest, match="expected a GenerationRequest, got dict"):
        engine.submit({"prompt": "x"})


# -- the worker survives anything --------------------------------------------------------------------------
@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), RuntimeError("CUDA error: device-side assert")])
def test_worker_survives_whatever_a_job_raises(engine, exc):
    def work():
        raise exc

    failed = engine.submit_call(work, task="upscale")
    with pytest.raises(EaselError, match=f"upscaling failed: {type(exc).__name__}"):
        failed.result(timeout=60)
    assert failed.state == FAILED and type(exc).__name__ in failed.progress.message
    assert len(engine.generate(tiny(), timeout=120).images) == 1  # the next job runs


def test_out_of_memory_in_a_call_says_what_to_try(engine):
    def work():
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(OutOfMemory, match="--medvram"):
        engine.submit_call(work, task="load", model="big").result(timeout=60)


def test_a_failing_load_names_the_model(engine):
    def work():
        raise RuntimeError("Error(s) in loading state_dict: size mismatch")

    job = engine.submit_call(work, task="load", model="easel-demo-sd3")
    with pytest.raises(EaselError, match="loading easel-demo-sd3 failed: RuntimeError: Error"):
        job.result(timeout=60)


# -- bounded memory ----------------------------------------------------------------------------------------
def test_a_slow_listener_gets_a_bounded_queue_that_ends_with_the_final_state(engine, hold_worker):
    with hold_worker(engine):
        job = engine.submit(tiny(steps=40, preview_every=1))
        events = job.events(timeout=60)  # subscribed now, read only after the job ended
    job.result(timeout=120)
    seen = list(events)
    assert len(seen) <= EVENTS_KEPT
    assert seen[-1].state == DONE and seen[-1].step == 40
    assert [e.step for e in seen[:-1]] == sorted(e.step for e in seen[:-1])  # the newest kept, in order
    assert job.latest_preview is None  # a finished job lets go of its preview


def test_a_delivered_result_keeps_only_its_metadata(engine):
    job = engine.submit(tiny(seed=4))
    result = job.result(timeout=120)
    job.release()
    assert len(result.images) == 1  # the caller still has its images
    kept = job.result(0)
    assert kept.images == [] and kept.seeds == [4] and "Seed: 4" in kept.infotexts[0]


# -- waiting holds no thread -------------------------------------------------------------------------------
def test_fifty_jobs_awaited_in_one_event_loop_hold_no_thread(engine):
    release = threading.Event()
    holder = engine.submit_call(lambda: release.wait(120), task="hold")
    jobs = [engine.submit(tiny(seed=i)) for i in range(50)]

    async def scenario():
        waits = [asyncio.create_task(job.wait(timeout=300)) for job in jobs]
        await asyncio.sleep(0)  # one turn of the loop: every task is now awaiting its job
        threads_while_waiting = threading.active_count()
        release.set()
        return threads_while_waiting, await asyncio.gather(*waits)

    before = threading.active_count()
    threads_while_waiting, ended = asyncio.run(scenario())
    assert threads_while_waiting <= before + 2  # not one thread per waiting job
    assert ended == [True] * 50 and all(job.state == DONE for job in jobs)
    assert holder.state == DONE


def test_an_async_wait_times_out_while_the_job_waits(engine, hold_worker):
    with hold_worker(engine):
        job = engine.submit(tiny())
        assert asyncio.run(job.wait(timeout=0.05)) is False
        assert job.state == QUEUED
    assert asyncio.run(job.wait(timeout=120)) is True
