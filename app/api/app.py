"""The API application: `create_api` for a standalone server, `create_api_router` to mount beside a UI.

    app = create_api(engine, settings, auth={"user": "pass"}, cors_origins=["http://localhost:3000"])

Every route lives under /sdapi/v1 (A1111's paths), sd-webui-controlnet's under /controlnet (its paths,
behind the same auth); /docs and /openapi.json are FastAPI's and need no auth. With `--api` the web UI is mounted on the same app (`gradio.mount_gradio_app(app, blocks, "/")`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import compile_path

from app import __version__
from app.api.auth import basic_auth, parse_auth_pairs
from app.api.context import ApiContext
from app.api.errors import install_error_handlers
from app.api.routes.controlnet import controlnet_router
from app.api.routes.extras import extras_router
from app.api.routes.generation import generation_router
from app.api.routes.models import models_router
from app.api.routes.progress import progress_router
from app.api.routes.queue import queue_router
from app.api.routes.system import system_router
from app.settings import Settings

API_PREFIX = "/sdapi/v1"
_ROUTERS = (generation_router, extras_router, progress_router, queue_router, models_router, system_router)


def create_api_router(
    engine,
    settings: Settings,
    *,
    auth: Mapping[str, str] | str | None = None,
    flags: Mapping[str, Any] | None = None,
    extra_routers: Sequence[APIRouter] = (),
) -> APIRouter:
    """All /sdapi/v1 and /controlnet routes over `engine`, with HTTP Basic auth when `auth` (user ->
    password, or "user:pass,user2:pass2") is given. The app that includes it needs `install_error_handlers`
    (its prefixes are both of these)."""
    credentials = parse_auth_pairs(auth) if isinstance(auth, str) else dict(auth or {})
    context = ApiContext.build(engine, settings, flags={"api_auth": bool(credentials), **(flags or {})})
    dependencies = [Depends(basic_auth(credentials))] if credentials else []
    sdapi = APIRouter(prefix=API_PREFIX)
    for build in _ROUTERS:
        sdapi.include_router(build(context))
    for extra in extra_routers:  # extensions' routes: /sdapi/v1/ext/<name>/..., behind the same auth
        sdapi.include_router(extra)
    controlnet = controlnet_router(context)
    router = APIRouter(dependencies=dependencies)
    for part in (sdapi, controlnet):
        _answer_unknown_paths(part)
        router.include_router(part)
    return router


def _answer_unknown_paths(router: APIRouter) -> None:
    """An unknown path under the router's prefix is the API's own 404 (or 405 for a known path and
    another method) in every mode: with the web UI mounted at "/", Gradio would answer it otherwise."""
    @router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown(rest: str, request: Request):
        path = request.url.path
        allowed = sorted(_methods_serving(request.app, path))
        if allowed:
            raise HTTPException(405, f"{request.method} is not allowed on {path} (allowed: {', '.join(allowed)})",
                                headers={"Allow": ", ".join(allowed)})
        raise HTTPException(404, f"{path}: no such API route (the routes are listed at /docs)")


def create_api(
    engine,
    settings: Settings,
    *,
    auth: Mapping[str, str] | str | None = None,
    cors_origins: Sequence[str] = (),
    extra_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """A FastAPI app serving the A1111-compatible API over `engine` (and `extra_routers`: the
    extensions' routes), with its error handlers, CORS and /docs. The web UI mounts itself on this
    app with `--api`, so both modes answer alike."""
    app = FastAPI(
        title="Easel API",
        version=__version__,
        description="AUTOMATIC1111-compatible REST API of Easel (FLUX.1 / SD3.5). Absent width, height, "
                    "steps and cfg_scale take the model's defaults; fields that do not apply are accepted "
                    "and listed in info.ignored_fields.",
    )
    install_error_handlers(app)
    origins = list(cors_origins)
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"], allow_headers=["*"],
                           allow_credentials=True)
    app.include_router(create_api_router(engine, settings, auth=auth, flags={"cors_allow_origins": origins},
                                         extra_routers=extra_routers))
    return app


def _methods_serving(app, path: str) -> set[str]:
    """The methods the API's documented routes serve `path` with (none: the path is unknown)."""
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(path):
            methods |= {method.upper() for method in operations}
    return methods
