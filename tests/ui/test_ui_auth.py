"""--gradio-auth: the UI asks for a login, and only the right password opens it."""

import httpx


def test_the_ui_needs_a_login_when_auth_is_set(start_ui):
    url = start_ui(auth=[("ann", "s3cret")])
    with httpx.Client(base_url=url, timeout=30) as anonymous:
        assert anonymous.get("/config").status_code == 401
        assert anonymous.post("/login", data={"username": "ann", "password": "wrong"}).status_code == 400
    with httpx.Client(base_url=url, timeout=30) as user:
        assert user.post("/login", data={"username": "ann", "password": "s3cret"}).status_code == 200
        assert user.get("/config").status_code == 200


def test_an_unknown_preset_is_refused_at_start(start_ui):
    import pytest

    with pytest.raises(ValueError, match="no preset named 'Nope'"):
        start_ui(preset="Nope")
