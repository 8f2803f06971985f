"""Domain errors -> HTTP, in one place. Every error body is {"error": <kind>, "detail": "<field>: <message>"}.

InvalidRequest 422, ModelNotFound 404, MissingModelFiles / UnreadableModel 409, OutOfMemory 503, bad
JSON or wrong types 422 naming the field. A 500 means a bug in Easel, never bad input.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import (
    EaselError,
    Interrupted,
    InvalidRequest,
    MissingModelFiles,
    ModelNotFound,
    OutOfMemory,
    UnreadableModel,
)
from app.upscale import UnknownUpscaler

log = logging.getLogger(__name__)

STATUS_OF: tuple[tuple[type[EaselError], int], ...] = (
    (InvalidRequest, 422),
    (ModelNotFound, 404),
    (UnknownUpscaler, 404),
    (MissingModelFiles, 409),
    (UnreadableModel, 409),
    (OutOfMemory, 503),
    (Interrupted, 409),  # a model load or upscale cancelled from the queue before it ran
)
MAX_ERRORS_LISTED = 10
# FastAPI's detail for a body it could not decode at all (not UTF-8, nested too deeply ...).
_FASTAPI_BODY_ERROR = "There was an error parsing the body"
_SHOWN_INPUT_CHARS = 40


def error_body(error: str, detail: str, **more: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail, **more}


def status_of(exc: EaselError) -> int:
    for kind, status in STATUS_OF:
        if isinstance(exc, kind):
            return status
    return 500


def install_error_handlers(app: FastAPI, prefix: str | tuple[str, ...] = ("/sdapi/", "/controlnet/")) -> None:
    """Register the handlers on `app` (handlers belong to an app, not to a router).

    Only requests under `prefix` (one or several) get this error format; on an app shared with a web
    UI, the UI's own routes keep FastAPI's default answers."""
    app.state.api_error_prefix = prefix
    app.add_exception_handler(EaselError, _easel_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


def _is_api(request: Request) -> bool:
    prefix = getattr(request.app.state, "api_error_prefix", "/")
    return request.url.path.startswith(prefix)  # str.startswith takes a tuple of prefixes too


async def _easel_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EaselError)
    status = status_of(exc)
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return JSONResponse(error_body(type(exc).__name__, str(exc)), status_code=status)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not _is_api(request):
        return await request_validation_exception_handler(request, exc)
    messages = [compact_error(e) for e in exc.errors()] or ["body: is invalid"]
    return JSONResponse(error_body("InvalidRequest", messages[0], errors=messages[:MAX_ERRORS_LISTED]),
                        status_code=422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not _is_api(request):
        return await http_exception_handler(request, exc)
    try:
        kind = HTTPStatus(exc.status_code).phrase.replace(" ", "")
    except ValueError:
        kind = "HTTPError"
    detail = str(exc.detail)
    if exc.status_code == 400 and detail == _FASTAPI_BODY_ERROR:
        detail = "body: could not be read as JSON (not UTF-8, or nested too deeply)"
    return JSONResponse(error_body(kind, detail), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
    if not _is_api(request):
        return PlainTextResponse("Internal Server Error", status_code=500)
    return JSONResponse(error_body(type(exc).__name__, f"internal error: {exc}"), status_code=500)


def compact_error(error: dict[str, Any]) -> str:
    """One pydantic / FastAPI error as "<field>: <message>", the field written as a client wrote it."""
    loc = list(error.get("loc", ()))
    if loc and loc[0] in ("body", "query", "path", "header"):
        where = loc.pop(0)
    else:
        where = "body"
    kind = error.get("type", "")
    message = str(error.get("msg", "is invalid"))
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return f"{where}: invalid JSON{f' ({reason})' if reason else ''}"
    if kind == "missing" and not loc:
        return f"{where}: a JSON object is required"
    if kind in ("model_attributes_type", "dict_type") and not loc:
        return f"{where}: expected a JSON object"
    message = message.removeprefix("Value error, ")
    shown = _shown_input(error.get("input")) if kind != "missing" else ""
    return f"{field_path(loc) or where}: {message}{shown}"


def field_path(loc: Sequence[Any]) -> str:
    """("init_images", 0) -> "init_images[0]"; ("override_settings", "x") -> "override_settings.x"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _shown_input(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        return ""
    text = repr(value)
    if len(text) > _SHOWN_INPUT_CHARS:
        text = text[:_SHOWN_INPUT_CHARS] + "..."
    return f" (got {text})"
