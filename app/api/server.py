"""The API app of both launch modes, and `--nowebui`: the API served alone.

`api_app` builds the FastAPI app (A1111 routes, the extensions' routes, error handlers, CORS, /docs)
over an engine made by `build_engine`; `--api` mounts the web UI on that same app.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from app.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)
PRESETS_DIR = PROJECT_ROOT / "presets"


def api_app(engine, settings: Settings, *, auth: Mapping[str, str] | None, cors: Sequence[str] = (),
            presets: Mapping | None = None):
    """The FastAPI app serving /sdapi/v1 over `engine`, extension routes included."""
    from app.api.app import create_api

    extra = []
    extensions = getattr(engine, "extensions", None)
    if extensions is not None:
        from app.extensions.facade import EaselFacade

        if presets is None:
            from app.presets import load_presets

            presets = {**load_presets(PRESETS_DIR)[0], **extensions.presets()}
        extra.append(extensions.api_router(EaselFacade(engine, settings, presets)))
    return create_api(engine, settings, auth=dict(auth or {}) or None, cors_origins=list(cors), extra_routers=extra)


def serve_api(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 7861,
    auth: Mapping[str, str] | str | None = None,
    cors: Sequence[str] | str = (),
    *,
    block: bool = True,
):
    """Build the engine and the API and serve them until interrupted (Ctrl+C), then close the engine.
    With block=False (tests), returns (HttpServer, engine) once the port answers.

    auth: {"user": "password"} or "user:pass[,user2:pass2]" (malformed text raises ValueError before
    anything starts). cors: allowed origins, a list or comma-separated text.
    """
    from app.api.auth import parse_auth_pairs
    from app.doors import resolve_doors
    from app.engine.factory import build_engine
    from app.http_serving import HttpServer

    credentials = parse_auth_pairs(auth) if isinstance(auth, str) else dict(auth or {})
    origins = [o.strip() for o in cors.split(",")] if isinstance(cors, str) else list(cors)
    doors = resolve_doors(ui=False, api=True, ui_auth=[], api_auth=credentials, host=host)
    engine = build_engine(settings, warm_up=True)
    try:
        server = HttpServer(api_app(engine, settings, auth=doors.api_auth, cors=[o for o in origins if o]), host, port,
                            log_level="info")
        url = server.start()
    except BaseException:
        engine.close()
        raise
    print(doors.describe(url), flush=True)
    if not block:
        return server, engine
    try:
        server.wait()
    finally:
        engine.close()
    return server, engine
