"""Requests through the engine's queue: concurrency, /progress with a preview, /interrupt, /skip, and a
queued request cancelled by id."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from api_server import decode_png

LONG = {"prompt": "a long job", "width": 256, "height": 256, "steps": 60, "seed": 3}
POLL_TIMEOUT_S = 60


def wait_for_progress(live_api, done, condition):
    """Poll /progress until `condition(progress_json)`; fail when the job ends first or time runs out."""
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while time.monotonic() < deadline:
        progress = live_api.get("progress").json()
        if condition(progress):
            return progress
        if done.done():
            pytest.fail(f"the job ended before /progress showed it: {done.result().text[:300]}")
        time.sleep(0.01)
    pytest.fail("/progress never showed the running job")


def test_progress_when_idle(live_api):
    progress = live_api.get("progress").json()
    assert progress["progress"] == 0 and progress["current_image"] is None
    assert progress["state"]["job"] == "" and progress["state"]["job_count"] == 0
    assert set(progress["state"]) >= {"skipped", "interrupted", "job", "job_count", "job_timestamp", "job_no",
                                      "sampling_step", "sampling_steps"}


def test_two_concurrent_requests_both_complete(live_api, tiny):
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(live_api.post, "txt2img", {**tiny, "seed": seed}) for seed in (11, 12)]
        responses = [f.result() for f in futures]
    assert [r.status_code for r in responses] == [200, 200]
    assert sorted(json.loads(r.json()["info"])["seed"] for r in responses) == [11, 12]
    assert all(len(r.json()["images"]) == 1 for r in responses)


@pytest.fixture(scope="module")
def full_run(live_api) -> float:
    """Seconds the long job takes uninterrupted here (and the model is warm afterwards)."""
    started = time.monotonic()
    assert live_api.post("txt2img", LONG).status_code == 200
    return time.monotonic() - started


def test_progress_preview_then_interrupt_returns_what_was_made(live_api, full_run):
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        done = pool.submit(live_api.post, "txt2img", LONG)
        running = wait_for_progress(live_api, done, lambda p: p["state"]["sampling_step"] >= 1)
        assert running["state"]["sampling_steps"] == 60 and running["state"]["job_count"] == 1
        assert running["state"]["job"].startswith("txt2img") and 0 < running["progress"] < 1
        with_preview = wait_for_progress(live_api, done, lambda p: p["current_image"] is not None)
        assert decode_png(with_preview["current_image"]).size == (256, 256)
        assert with_preview["state"]["sampling_step"] < 60

        assert live_api.post("interrupt").status_code == 200
        response = done.result()
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    info = json.loads(response.json()["info"])
    assert len(response.json()["images"]) == 1 and info["interrupted"] is True
    assert decode_png(response.json()["images"][0]).size == (256, 256)
    assert elapsed < 0.6 * full_run, (elapsed, full_run)
    assert live_api.get("progress").json()["state"]["job_count"] == 0


def test_queued_requests_are_counted_and_interrupt_stops_only_the_running_one(live_api, tiny):
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(live_api.post, "txt2img", LONG)
        wait_for_progress(live_api, first, lambda p: p["state"]["sampling_step"] >= 1)
        second = pool.submit(live_api.post, "txt2img", tiny)
        wait_for_progress(live_api, first, lambda p: p["state"]["job_count"] == 2)
        live_api.post("interrupt", {"any": "body"})
        responses = [first.result(), second.result()]
    assert [r.status_code for r in responses] == [200, 200]
    assert len(responses[0].json()["images"]) == 1
    assert json.loads(responses[0].json()["info"])["interrupted"] is True
    # as A1111: another user's queued request is not touched by /interrupt
    assert len(responses[1].json()["images"]) == 1
    assert json.loads(responses[1].json()["info"])["interrupted"] is False


def test_skip_ends_the_batch_and_the_job_goes_on(live_api, full_run):
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(live_api.post, "txt2img", {**LONG, "n_iter": 2})
        wait_for_progress(live_api, done, lambda p: p["state"]["sampling_step"] >= 1)
        skipped_at = time.monotonic()
        assert live_api.post("skip").status_code == 200
        wait_for_progress(live_api, done, lambda p: "batch 2/2" in (p["textinfo"] or ""))
        assert time.monotonic() - skipped_at < 0.6 * full_run  # the first batch did not run its 60 steps
        response = done.result()
    info = json.loads(response.json()["info"])
    assert len(response.json()["images"]) == 2 and info["interrupted"] is False


def test_a_request_cancelled_while_queued_answers_200_with_nothing_made(live_api, tiny, hold_worker):
    with ThreadPoolExecutor(1) as pool, hold_worker(live_api.engine):
        waiting = pool.submit(live_api.post, "txt2img", tiny)
        assert live_api.engine.wait_for_queue(lambda jobs: any(j.source == "api" for j in jobs), timeout=60)
        (queued,) = [j for j in live_api.get("queue").json()["jobs"] if j["source"] == "api"]
        assert queued["state"] == "queued"
        cancelled = live_api.post(f"queue/{queued['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "interrupted"
        response = waiting.result(timeout=60)  # answered at once: the holding job still runs
    assert response.status_code == 200 and response.json()["images"] == []
    assert json.loads(response.json()["info"])["interrupted"] is True
