"""The API router mounted on an app that serves other routes (as the web UI does)."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from app.api import create_api_router, install_error_handlers
from app.settings import Settings


class NoModelsEngine:
    """An engine stand-in: enough for routes that never generate."""

    current_job = None


def make_app(tmp_path) -> FastAPI:
    app = FastAPI()

    @app.get("/ui/secret")
    def ui_route():
        raise HTTPException(status_code=403, detail="not for you")

    @app.get("/ui/number")
    def ui_number(n: int):
        return {"n": n}

    install_error_handlers(app)
    settings = Settings(models_dir=tmp_path, outputs_dir=tmp_path, settings_file=tmp_path / "s.json")
    app.include_router(create_api_router(NoModelsEngine(), settings, auth={"u": "p"}))
    return app


def test_api_routes_use_the_api_error_format_and_others_keep_fastapis(tmp_path):
    client = TestClient(make_app(tmp_path))
    assert client.get("/sdapi/v1/samplers", auth=("u", "p")).json()[0]["name"] == "Euler"
    unauthorized = client.get("/sdapi/v1/samplers")
    assert unauthorized.status_code == 401 and unauthorized.json()["error"] == "Unauthorized"
    bad = client.post("/sdapi/v1/txt2img", json={"width": "x"}, auth=("u", "p"))
    assert bad.status_code == 422 and bad.json()["detail"].startswith("width:")

    assert client.get("/ui/secret").json() == {"detail": "not for you"}
    default = client.get("/ui/number", params={"n": "x"})
    assert default.status_code == 422 and isinstance(default.json()["detail"], list)  # FastAPI's own shape
