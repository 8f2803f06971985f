"""How fast GET /sdapi/v1/progress (and /queue) answer while many txt2img requests wait in the queue.

  .venv/bin/python bench/queue_latency.py [--requests 64] [--size 64] [--steps 4] [--poll-every 0.05]

Starts a real API server (uvicorn on a free loopback port), posts `--requests` txt2img requests at once,
and while they wait polls /progress and /queue one request at a time, printing the median and p95
latency of each. Waiting requests hold no thread, so the figures should not grow with `--requests`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app):
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name="bench-api-server", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    if not server.started:
        raise SystemExit("the API server did not start")
    return server, thread, f"http://127.0.0.1:{port}/sdapi/v1"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def run(base: str, a) -> None:
    import httpx

    body = {"prompt": "a red circle on a blue background", "width": a.size, "height": a.size, "steps": a.steps,
            "override_settings": {"sd_model_checkpoint": a.model}}
    limits = httpx.Limits(max_connections=a.requests + 8)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        first = await client.post(f"{base}/txt2img", json={**body, "steps": 1})  # load the model first
        first.raise_for_status()
        started = time.perf_counter()
        posts = [asyncio.create_task(client.post(f"{base}/txt2img", json={**body, "seed": i}))
                 for i in range(a.requests)]
        timings: dict[str, list[float]] = {"progress": [], "queue": []}
        most_waiting = 0
        while not all(p.done() for p in posts):
            for route in timings:
                t0 = time.perf_counter()
                answer = await client.get(f"{base}/{route}")
                timings[route].append(time.perf_counter() - t0)
                answer.raise_for_status()
                if route == "progress":
                    most_waiting = max(most_waiting, answer.json()["state"]["job_count"])
            await asyncio.sleep(a.poll_every)  # a client polling, not a loop stealing the worker's CPU
        responses = await asyncio.gather(*posts)
        total = time.perf_counter() - started
    failed = [r.status_code for r in responses if r.status_code != 200]
    print(f"{a.requests} txt2img requests ({a.size} px, {a.steps} steps) done in {total:.1f} s; "
          f"at most {most_waiting} jobs in the queue; {len(failed)} failed {failed[:5]}")
    for route, values in timings.items():
        ms = [v * 1000 for v in values]
        print(f"GET /sdapi/v1/{route:<9} {len(ms):>5} calls  median {statistics.median(ms):7.1f} ms  "
              f"p95 {percentile(ms, 95):7.1f} ms  max {max(ms):7.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--poll-every", type=float, default=0.05, help="seconds between two polls")
    ap.add_argument("--model", default="easel-demo-shapes-flux")
    a = ap.parse_args()

    from app.api import create_api
    from app.engine.engine import Engine
    from app.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="easel-queue-bench-"))
    engine = Engine(Settings(models_dir=ROOT / "models", outputs_dir=tmp, device="cpu", settings_file=tmp / "s.json"))
    server, thread, base = start_server(create_api(engine, engine.settings))
    try:
        asyncio.run(run(base, a))
    finally:
        server.should_exit = True
        thread.join(15)
        engine.close()


if __name__ == "__main__":
    main()
