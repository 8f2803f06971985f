"""What the web UI shows and answers to someone who is not logged in, and what its API page lists."""

import re

import httpx
import pytest

LOGIN = ("ann", "s3cret")
MAIN_ACTIONS = {"/txt2img", "/img2img", "/inpaint", "/upscale", "/png_info", "/models_refresh", "/settings_save"}
# the results panel's own events (gallery select, Interrupt, Skip) are still "undocumented", not private
RESULTS_PANEL = {"/_on_select", "/interrupt", "/skip"}


def _base(name: str) -> str:
    return re.sub(r"_\d+$", "", name)  # Gradio numbers repeated names: /lambda, /lambda_1, …


def test_the_api_page_lists_the_main_actions_and_no_wiring(start_ui):
    url = start_ui()
    with httpx.Client(base_url=url, timeout=30) as client:
        listed = client.get("/gradio_api/info").json()
        everything = client.get("/gradio_api/info", params={"all_endpoints": "true"}).json()
    assert set(listed["named_endpoints"]) == MAIN_ACTIONS
    assert listed["unnamed_endpoints"] == {} and everything["unnamed_endpoints"] == {}
    wiring = {_base(name) for name in everything["named_endpoints"]} - MAIN_ACTIONS
    assert wiring <= RESULTS_PANEL, f"UI wiring offered as API endpoints: {sorted(wiring - RESULTS_PANEL)}"


def test_gradio_routes_answer_nothing_without_a_login(start_ui, tmp_path):
    url = start_ui(auth=[LOGIN])
    image = tmp_path / "out" / "secret.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(b"\x89PNG not really")
    refused = [("GET", "/config", {}), ("GET", "/gradio_api/info", {}),
               ("GET", "/gradio_api/info?all_endpoints=true", {}),
               ("POST", "/gradio_api/call/txt2img", {"json": {"data": ["a cat"]}}),
               ("POST", "/gradio_api/run/txt2img", {"json": {"data": ["a cat"]}}),
               ("POST", "/gradio_api/queue/join", {"json": {"fn_index": 0, "data": [], "session_hash": "abc"}}),
               ("GET", "/gradio_api/queue/data?session_hash=abc", {}),
               ("POST", "/gradio_api/upload", {"files": {"files": ("x.png", b"data")}}),
               ("GET", f"/gradio_api/file={image}", {})]
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        for method, path, body in refused:
            answer = anonymous.request(method, path, **body)
            assert answer.status_code == 401, (method, path, answer.status_code)
            assert "Not authenticated" in answer.text and "PNG" not in answer.text
    with httpx.Client(base_url=url, timeout=30) as user:
        assert user.post("/login", data=dict(zip(("username", "password"), LOGIN))).status_code == 200
        assert MAIN_ACTIONS <= set(user.get("/gradio_api/info").json()["named_endpoints"])


def test_the_login_page_of_the_web_ui_tells_nothing_about_its_api(start_ui):
    url = start_ui(auth=[LOGIN])
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        for page in ("/", "/?all_endpoints=true"):
            text = anonymous.get(page).text
            assert "auth_required" in text and "/txt2img" not in text and "/settings_save" not in text
