"""GET /sdapi/v1/queue and POST /sdapi/v1/queue/{job_id}/cancel, and many waiting requests that leave the
server answering. Requests are held in the queue by a running job that waits for an Event."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from app.generation.request import validate_request

WAITING = 48  # more than the 40 threads of anyio's default limiter
ANSWER_TIMEOUT_S = 30  # generous: this is about answering at all, not about speed


def _queued_api_jobs(jobs) -> int:
    return sum(1 for j in jobs if j.source == "api")


def test_the_queue_is_empty_when_idle(live_api):
    response = live_api.get("queue")
    assert response.status_code == 200 and response.json() == {"jobs": []}


def test_the_queue_lists_every_front_end_and_cancels_one_by_id(live_api, tiny, hold_worker):
    engine = live_api.engine
    with ThreadPoolExecutor(1) as pool, hold_worker(engine) as holder:
        ui_job = engine.submit(validate_request(prompt="from the browser " * 10, width=64, height=64, steps=1,
                                                save=False), source="ui:img2img")
        api_call = pool.submit(live_api.post, "txt2img", tiny)
        assert engine.wait_for_queue(lambda jobs: _queued_api_jobs(jobs) == 1, timeout=60)
        jobs = live_api.get("queue").json()["jobs"]
        assert [j["id"] for j in jobs[:2]] == [holder.id, ui_job.id]
        assert [j["position"] for j in jobs] == [0, 1, 2]
        assert [j["who"] for j in jobs[1:]] == ["UI · img2img", "API"]
        assert jobs[2]["task"] == "txt2img" and jobs[2]["prompt"] == tiny["prompt"] and jobs[2]["state"] == "queued"
        assert len(jobs[1]["prompt"]) <= 80 and jobs[1]["model"]

        cancelled = live_api.post(f"queue/{ui_job.id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json() == {"id": ui_job.id, "cancelled": True,
                                                                     "state": "interrupted"}
        assert ui_job.result(0).images == []  # the browser tab's job ended, nothing made
        assert [j["id"] for j in live_api.get("queue").json()["jobs"]][1:] == [jobs[2]["id"]]
    assert len(api_call.result(timeout=120).json()["images"]) == 1  # the API's request was not touched


def test_cancelling_an_unknown_job_is_a_404_naming_it(live_api):
    response = live_api.post("queue/424242/cancel")
    assert response.status_code == 404
    assert response.json()["error"] == "NotFound" and "424242" in response.json()["detail"]
    assert live_api.post("queue/not-a-number/cancel").status_code == 422


def test_the_queue_routes_are_documented(live_api):
    paths = live_api.client.get(f"{live_api.base_url}/openapi.json").json()["paths"]
    assert "get" in paths["/sdapi/v1/queue"] and "post" in paths["/sdapi/v1/queue/{job_id}/cancel"]
    assert "404" in paths["/sdapi/v1/queue/{job_id}/cancel"]["post"]["description"]


def test_a_model_reload_waits_in_the_queue_as_a_load_job(live_api, hold_worker):
    with ThreadPoolExecutor(1) as pool, hold_worker(live_api.engine):
        reload = pool.submit(live_api.post, "reload-checkpoint")
        assert live_api.engine.wait_for_queue(lambda jobs: any(j.task == "load" for j in jobs), timeout=60)
        (load,) = [j for j in live_api.get("queue").json()["jobs"] if j["task"] == "load"]
        assert load["model"] and load["state"] == "queued"
        assert live_api.post(f"queue/{load['id']}/cancel").status_code == 200
        response = reload.result(timeout=60)
    assert response.status_code == 409 and "cancelled" in response.json()["detail"]


def test_many_waiting_requests_leave_every_route_answering(live_api, tiny, hold_worker):
    def post(seed: int) -> httpx.Response:
        return httpx.post(live_api.url("txt2img"), json={**tiny, "steps": 1, "seed": seed}, timeout=300)

    with ThreadPoolExecutor(WAITING) as pool:
        with hold_worker(live_api.engine):
            waiting = [pool.submit(post, seed) for seed in range(WAITING)]
            # every request got in and submitted its job: none waits for a free thread
            assert live_api.engine.wait_for_queue(lambda jobs: _queued_api_jobs(jobs) == WAITING, timeout=120)
            progress = live_api.get("progress", timeout=ANSWER_TIMEOUT_S)
            queue = live_api.get("queue", timeout=ANSWER_TIMEOUT_S)
            models = live_api.get("sd-models", timeout=ANSWER_TIMEOUT_S)  # a plain (threadpool) route
        responses = [f.result(timeout=300) for f in waiting]
    assert progress.status_code == 200 and progress.json()["state"]["job_count"] == WAITING + 1
    assert queue.status_code == 200 and len(queue.json()["jobs"]) == WAITING + 1
    assert models.status_code == 200 and models.json()
    assert [r.status_code for r in responses] == [200] * WAITING
    assert sorted(json.loads(r.json()["info"])["seed"] for r in responses) == list(range(WAITING))
