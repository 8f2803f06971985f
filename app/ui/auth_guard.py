"""What --gradio-auth leaves open in Gradio itself, closed.

Gradio answers 401 on its API routes (/config, /gradio_api/info, /gradio_api/call/*, queue/join, upload,
file=) until one logs in, but its login page embeds the same API description as /gradio_api/info
(`window.gradio_api_info`: every public endpoint with its parameters, and with `?all_endpoints=true`
the undocumented ones too). This middleware blanks that description on the login page; a logged-in
user's page is left as it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

_CONFIG = re.compile(rb"window\.gradio_config = (.*?);</script>", re.S)
_API_INFO = re.compile(rb"(window\.gradio_api_info = )(.*?)(;</script>)", re.S)
_NO_API = json.dumps({"named_endpoints": {}, "unnamed_endpoints": {}}).encode()
_STATIC = ("/assets/", "/static/", "/svelte/")  # bundles: never a page, keep their compression


def install_auth_guard(app, credentials: Sequence | None) -> None:
    """Add the guard to `app` (the FastAPI app Gradio is mounted on, before it serves) when the UI
    asks for a login; without credentials there is no login page and nothing to guard."""
    if credentials:
        app.add_middleware(LoginPageGuard)


def without_api_info(page: bytes) -> bytes:
    """The HTML page with its API description emptied when it is the login page; unchanged otherwise.
    A page whose config cannot be read is treated as the login page (nothing leaks by mistake)."""
    match = _CONFIG.search(page)
    if match is None:
        return page
    try:
        config = json.loads(match.group(1))
        logged_in = isinstance(config, dict) and not config.get("auth_required")
    except ValueError:
        logged_in = False
    if logged_in:
        return page
    return _API_INFO.sub(lambda m: m.group(1) + _NO_API + m.group(3), page)


class LoginPageGuard:
    """ASGI middleware: HTML answers to GET pass through `without_api_info`. Pages are asked for
    uncompressed (Accept-Encoding dropped) so that the body can be read, whatever the client sends."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"].startswith(_STATIC):
            await self.app(scope, receive, send)
            return
        scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]}
        start: dict | None = None
        chunks: list[bytes] = []

        async def guarded_send(message):
            nonlocal start
            if message["type"] == "http.response.start":
                headers = {k.lower(): v for k, v in message.get("headers", [])}
                if not headers.get(b"content-type", b"").startswith(b"text/html"):
                    await send(message)
                    return
                start = message  # held back until the whole page is read
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            page = without_api_info(b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(page)).encode())]})
            await send({"type": "http.response.body", "body": page})

        await self.app(scope, receive, guarded_send)
