"""Start the web UI (and the API beside it with --api): flags, auth, share, and the warm-up.

One FastAPI app serves everything: with `--api` it is the API's app (routes, error handlers, CORS,
/docs) and the Gradio UI is mounted on it; without, a bare app carries the UI alone. Gradio is the only
heavy import at start; the catalog scan and the torch/diffusers imports run in the engine's warm-up,
and jobs wait for it instead of racing it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)
PRESETS_DIR = PROJECT_ROOT / "presets"


def parse_gradio_auth(inline: str | None, path: Path | None) -> list[tuple[str, str]]:
    """user:pass pairs from --gradio-auth ("u:p,u2:p2") and --gradio-auth-path (one or more per line)."""
    text = []
    if inline:
        text.append(inline)
    if path:
        try:
            text.extend(Path(path).read_text().splitlines())
        except OSError as exc:
            raise ValueError(f"--gradio-auth-path: cannot read {path}: {exc.strerror}") from None
    pairs = []
    for chunk in ",".join(text).split(","):
        chunk = chunk.strip()
        if not chunk:
            continue
        user, sep, password = chunk.partition(":")
        if not sep or not user or not password:
            raise ValueError(f"--gradio-auth: {chunk!r} is not user:password")
        pairs.append((user, password))
    return pairs


@dataclass
class WebUI:
    """A running web UI: its Gradio blocks, the FastAPI app it is mounted on, the URL, the engine."""

    blocks: Any
    app: Any
    url: str
    engine: Any
    server: Any
    share_url: str | None = None

    def close(self) -> None:
        self.server.stop()
        self.engine.close()


def launch_webui(settings: Settings, *, host: str, port: int, share: bool, auth: list[tuple[str, str]],
                 api: bool, api_auth: dict[str, str] | str | None, cors: list[str], preset: str | None,
                 block: bool = True, insecure_extensions: bool = False, api_without_auth: bool = False,
                 ui_without_auth: bool = False) -> WebUI:
    """Serve the UI (with the API when `api`); returns the running WebUI when block=False (tests)."""
    import gradio as gr
    from fastapi import FastAPI

    from app.api.auth import parse_auth_pairs
    from app.doors import resolve_doors
    from app.engine.factory import build_engine
    from app.extensions.gate import gate_for_server
    from app.http_serving import HttpServer
    from app.ui.app import CSS_FILE, build_ui
    from app.ui.auth_guard import install_auth_guard
    from app.ui.context import UIContext

    api_credentials = parse_auth_pairs(api_auth) if isinstance(api_auth, str) else dict(api_auth or {})
    doors = resolve_doors(ui=True, api=api, ui_auth=auth, api_auth=api_credentials, host=host, share=share,
                          api_without_auth=api_without_auth, ui_without_auth=ui_without_auth)
    engine = build_engine(settings, warm_up=True)
    try:
        extensions = engine.extensions
        context = UIContext.create(engine, settings, PRESETS_DIR)
        context.presets.update(extensions.presets())
        if preset:
            if preset not in context.presets:
                raise ValueError(f"--preset: no preset named {preset!r} "
                                 f"(available: {', '.join(context.presets) or 'none'})")
            context.settings = _with_preset(settings, preset)
        ui = build_ui(context, extensions, gate_for_server(host, share, insecure_extensions))
        ui.queue(default_concurrency_limit=None)
        if api:
            from app.api.server import api_app

            app = api_app(engine, settings, auth=doors.api_auth, cors=cors, presets=context.presets)
        else:
            app = FastAPI(title="Easel", docs_url=None, redoc_url=None, openapi_url=None)
        theme = gr.themes.Default(primary_hue="orange", neutral_hue="slate", radius_size="sm", spacing_size="sm")
        gr.mount_gradio_app(app, ui, path="/", auth=doors.ui_auth or None, theme=theme, css=CSS_FILE.read_text(),
                            show_error=True, allowed_paths=[str(Path(settings.outputs_dir).resolve())],
                            server_name=host, server_port=port)
        install_auth_guard(app, doors.ui_auth)  # the login page tells nothing about the UI's API
        server = HttpServer(app, host, port)
        url = server.start()
    except BaseException:
        engine.close()
        raise
    web = WebUI(ui, app, url, engine, server)
    print(f"Easel is running at {url}", flush=True)
    print(doors.describe(url), flush=True)
    if share:
        web.share_url = _open_share_link(host, port)
        if web.share_url:
            print(f"Public link: {web.share_url}", flush=True)
        else:
            print("--share: no public link could be made (this machine cannot reach the share server); "
                  f"still serving locally at {url}", flush=True)
    if not block:
        return web
    try:
        server.wait()
    finally:
        engine.close()
    return web


def _open_share_link(host: str, port: int) -> str | None:
    """Gradio's share tunnel to this server, or None when it cannot be made (offline)."""
    from gradio import networking

    try:
        return networking.setup_tunnel(local_host="127.0.0.1" if host in ("0.0.0.0", "::") else host,
                                       local_port=port, share_token=secrets.token_urlsafe(32),
                                       share_server_address=None, share_server_tls_certificate=None)
    except Exception as exc:  # no internet, a blocked port, a missing tunnel binary
        log.info("share link failed: %s", exc)
        return None


def _with_preset(settings: Settings, preset: str) -> Settings:
    from dataclasses import replace

    return replace(settings, default_preset=preset)
