"""The AUTOMATIC1111-compatible REST API (/sdapi/v1). Only this package maps domain errors to HTTP."""

from app.api.app import API_PREFIX, create_api, create_api_router
from app.api.auth import parse_auth_pairs
from app.api.errors import install_error_handlers

__all__ = ["API_PREFIX", "create_api", "create_api_router", "install_error_handlers", "parse_auth_pairs"]
