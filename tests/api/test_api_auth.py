"""--api-auth (HTTP Basic on every /sdapi route) and CORS, on a server of their own."""

from __future__ import annotations

import httpx
import pytest
from api_server import build_engine, start_server, stop_server

from app.api import create_api, parse_auth_pairs
from app.api.server import serve_api
from app.settings import Settings

ORIGIN = "http://client.example"


@pytest.fixture(scope="module")
def secured(api_models_dir, tmp_path_factory):
    outputs = tmp_path_factory.mktemp("auth-outputs")
    engine = build_engine(api_models_dir, outputs)
    app = create_api(engine, engine.settings, auth="alice:s3cret,bob:pa:ss", cors_origins=[ORIGIN])
    server, thread, base_url = start_server(app)
    try:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            yield client
    finally:
        stop_server(server, thread)
        engine.close()


@pytest.mark.parametrize("path", ["/sdapi/v1/sd-models", "/sdapi/v1/progress", "/sdapi/v1/options"])
def test_missing_or_wrong_credentials_are_401(secured, path):
    for auth in (None, ("alice", "wrong"), ("mallory", "s3cret"), ("alice", "")):
        response = secured.get(path, auth=auth)
        assert response.status_code == 401, (auth, response.text)
        assert response.headers["www-authenticate"].startswith("Basic")
    garbled = secured.get(path, headers={"Authorization": "Basic !!!not-base64"})
    assert garbled.status_code == 401


def test_right_credentials_pass(secured):
    assert secured.get("/sdapi/v1/sd-models", auth=("alice", "s3cret")).status_code == 200
    assert secured.get("/sdapi/v1/sd-models", auth=("bob", "pa:ss")).status_code == 200
    posted = secured.post("/sdapi/v1/txt2img", json={"width": 0}, auth=("alice", "s3cret"))
    assert posted.status_code == 422  # through auth, then validated


def test_posts_need_auth_before_anything_else(secured):
    assert secured.post("/sdapi/v1/txt2img", content=b"{not json").status_code == 401
    assert secured.post("/sdapi/v1/interrupt").status_code == 401


def test_docs_stay_open_and_credentials_never_show(secured):
    assert secured.get("/docs").status_code == 200
    flags = secured.get("/sdapi/v1/cmd-flags", auth=("alice", "s3cret")).json()
    assert flags["api_auth"] is True and "s3cret" not in str(flags)


def test_cors_allows_the_configured_origin_only(secured):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = secured.options("/sdapi/v1/txt2img", headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    other = secured.options("/sdapi/v1/txt2img", headers={"Origin": "http://evil.example", **preflight})
    assert other.headers.get("access-control-allow-origin") != "http://evil.example"


def test_parse_auth_pairs():
    assert parse_auth_pairs("u:p") == {"u": "p"}
    assert parse_auth_pairs(" u:p , v:x:y ") == {"u": "p", "v": "x:y"}


@pytest.mark.parametrize(("text", "entry"), [("u", "entry 1"), ("u:p,bob", "entry 2"), ("u:p,:x", "entry 2"),
                                             ("u:", "entry 1"), ("", "expected user:password")])
def test_parse_auth_pairs_names_the_malformed_entry(text, entry):
    with pytest.raises(ValueError, match=entry):
        parse_auth_pairs(text)


def test_serve_api_refuses_malformed_auth_before_starting(tmp_path):
    with pytest.raises(ValueError, match="entry 1"):
        serve_api(Settings(models_dir=tmp_path, outputs_dir=tmp_path, settings_file=tmp_path / "s.json"),
                  "127.0.0.1", 0, auth="nopassword")
