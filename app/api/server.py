"""Serve the API with uvicorn: `serve_api(settings, host, port, auth, cors)`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from app.settings import Settings

log = logging.getLogger(__name__)


def serve_api(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 7861,
    auth: Mapping[str, str] | str | None = None,
    cors: Sequence[str] | str = (),
) -> None:
    """Build the engine and the API, serve until interrupted (Ctrl+C), then close the engine.

    auth: {"user": "password"} or "user:pass[,user2:pass2]" (malformed text raises ValueError before
    anything starts). cors: allowed origins, a list or comma-separated text.
    """
    import uvicorn

    from app.api.app import create_api
    from app.api.auth import parse_auth_pairs
    from app.engine.engine import Engine

    credentials = parse_auth_pairs(auth) if isinstance(auth, str) else dict(auth or {})
    origins = [o.strip() for o in cors.split(",")] if isinstance(cors, str) else list(cors)
    engine = Engine(settings)
    try:
        app = create_api(engine, settings, auth=credentials or None, cors_origins=[o for o in origins if o])
        where = f"http://{host}:{port}"
        log.info("API on %s/sdapi/v1 (docs: %s/docs)%s", where, where, " with HTTP Basic auth" if credentials else "")
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        engine.close()
