"""Start the web UI (and the API beside it with --api): flags, auth, share, and the lazy warm-up.

Gradio is imported here, torch and diffusers are not: the page serves at once and the catalog scan and
the first model load happen in the background and on the first request.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

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


def reachable_by_others(host: str, share: bool) -> bool:
    return share or host not in ("127.0.0.1", "localhost", "::1")


def launch_webui(settings: Settings, *, host: str, port: int, share: bool, auth: list[tuple[str, str]],
                 api: bool, api_auth: str | None, cors: list[str], preset: str | None, block: bool = True,
                 insecure_extensions: bool = False):
    """Serve the UI; returns (blocks, app, local_url) when block=False (tests)."""
    import gradio as gr

    from app.engine.engine import Engine
    from app.extensions.facade import EaselFacade
    from app.extensions.gate import gate_for_server
    from app.extensions.manager import ExtensionManager
    from app.ui.app import CSS_FILE, build_ui
    from app.ui.context import UIContext

    extensions = ExtensionManager.from_settings(settings)
    engine = Engine(settings, hooks=extensions)
    context = UIContext.create(engine, settings, PRESETS_DIR)
    context.presets.update(extensions.presets())
    if preset:
        if preset not in context.presets:
            raise ValueError(f"--preset: no preset named {preset!r} (available: {', '.join(context.presets) or 'none'})")
        context.settings = _with_preset(settings, preset)
    threading.Thread(target=_warm_up, args=(engine,), name="easel-warm-up", daemon=True).start()
    ui = build_ui(context, extensions, gate_for_server(host, share, insecure_extensions))
    ui.queue(default_concurrency_limit=None)
    theme = gr.themes.Default(primary_hue="orange", neutral_hue="slate", radius_size="sm", spacing_size="sm")
    app, local_url, share_url = ui.launch(
        server_name=host, server_port=port, share=share, auth=auth or None, prevent_thread_lock=True,
        theme=theme, css=CSS_FILE.read_text(), show_error=True, quiet=True, favicon_path=None)
    if api:
        from app.api.app import create_api_router
        from app.api.errors import install_error_handlers

        install_error_handlers(app)
        easel = EaselFacade(engine, settings, context.presets)
        app.include_router(create_api_router(engine, settings, auth=api_auth, flags={"cors_allow_origins": cors},
                                             extra_routers=[extensions.api_router(easel)]))
        print(f"API: {local_url.rstrip('/')}/sdapi/v1 (docs at {local_url.rstrip('/')}/docs)", flush=True)
    print(f"Easel is running at {local_url}", flush=True)
    if share:
        if share_url:
            print(f"Public link: {share_url}", flush=True)
        else:
            print("--share: no public link could be made (this machine cannot reach the share server); "
                  f"still serving locally at {local_url}", flush=True)
    if not block:
        return ui, app, local_url
    try:
        ui.block_thread()
    finally:
        engine.close()
    return ui, app, local_url


def _with_preset(settings: Settings, preset: str) -> Settings:
    from dataclasses import replace

    return replace(settings, default_preset=preset)


def _warm_up(engine) -> None:
    """Scan (building the demo models if needed) and import the heavy libraries before the first click."""
    try:
        engine.catalog()
        engine.device  # noqa: B018 - detection imports torch
        import diffusers  # noqa: F401
    except Exception:  # a broken models folder is reported by the Models tab, not here
        log.exception("warm-up failed")
