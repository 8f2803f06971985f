"""The login page of a UI behind --gradio-auth tells nothing about its API; a logged-in page is whole."""

import gradio as gr
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.ui.auth_guard import install_auth_guard

LOGIN = ("ann", "s3cret")


def small_app(guarded: bool) -> FastAPI:
    """A UI mounted as launch.py mounts Easel's: one public endpoint and one undocumented one."""
    with gr.Blocks() as blocks:
        box = gr.Textbox()
        button = gr.Button()
        button.click(lambda s: s, box, box, api_name="echo")
        button.click(lambda s: s, box, box, api_name="quiet_echo", api_visibility="undocumented")
    app = FastAPI()
    gr.mount_gradio_app(app, blocks, path="/", auth=[LOGIN])
    if guarded:
        install_auth_guard(app, [LOGIN])
    return app


def login_pages(client: TestClient) -> dict[str, str]:
    compressed = {"accept-encoding": "br, gzip"}
    return {page: client.get(page, headers=compressed).text
            for page in ("/", "/?all_endpoints=true", "/gradio_api/runs")}


def test_the_guard_blanks_the_api_description_on_the_login_page():
    with TestClient(small_app(guarded=False)) as client:  # what Gradio does alone
        assert "/quiet_echo" in login_pages(client)["/?all_endpoints=true"]
    with TestClient(small_app(guarded=True)) as client:
        for page, text in login_pages(client).items():
            assert "auth_required" in text, page
            assert "/echo" not in text and "/quiet_echo" not in text, page
            assert 'window.gradio_api_info = {"named_endpoints": {}, "unnamed_endpoints": {}};' in text
        assert client.post("/login", data=dict(zip(("username", "password"), LOGIN))).status_code == 200
        assert "/echo" in client.get("/").text  # a logged-in user's page is left whole
