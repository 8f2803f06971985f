"""Extension API routes that fail as the extension's failure: a JSON error naming it, never a bare 500.

An extension's router is made with `extension_router(name)`; every route added to it catches what
its handler raises. Easel's own errors (InvalidRequest from easel.generate, say) and HTTP errors the
route raises on purpose keep their meaning and status.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from app.errors import EaselError

log = logging.getLogger(__name__)

_PASSED_THROUGH = (EaselError, HTTPException, RequestValidationError)


def extension_router(extension: str) -> APIRouter:
    """A router whose routes answer {"error": "ExtensionError", "detail": "extension 'x' failed: ..."}
    with status 500 when their handler raises something unexpected."""

    class ExtensionRoute(APIRoute):
        def get_route_handler(self):
            handler = super().get_route_handler()

            async def guarded(request):
                try:
                    return await handler(request)
                except _PASSED_THROUGH:
                    raise
                except Exception as exc:  # the extension's bug: say whose, keep serving
                    log.exception("extension %s: route %s failed", extension, request.url.path)
                    detail = f"extension {extension!r} failed: {type(exc).__name__}: {exc}"
                    return JSONResponse({"error": "ExtensionError", "extension": extension, "detail": detail},
                                        status_code=500)

            return guarded

    return APIRouter(route_class=ExtensionRoute)
