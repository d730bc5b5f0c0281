"""The admin API's errors: one JSON shape for every failure, with a stable code.

`{"error": {"status": 404, "code": "not_found", "message": "...", "request_id": "..."}}`.
Handlers raise `ApiError`; FastAPI's own errors (unknown path, bad parameter) and
anything unexpected are mapped to the same shape here, so no caller ever sees
an HTML page or a bare string.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from lanner.control.schemas import ErrorResponse
from lanner.record.filter import FilterError
from lanner.record.store import StoreError

log = logging.getLogger("lanner.admin")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
    503: "unavailable",
}

# What OpenAPI says every API path may answer besides success.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": code} for status, code in _CODES.items()
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "-"))


def error_response(request: Request, status: int, code: str, message: str, **headers: str) -> JSONResponse:
    body = {"error": {"status": status, "code": code, "message": message, "request_id": request_id(request)}}
    return JSONResponse(body, status_code=status, headers=headers or None)


def crashed(request: Request, exc: Exception) -> JSONResponse:
    """A bug: logged with its traceback, answered 500 without details."""
    log.error(
        "admin API call failed",
        exc_info=exc,
        extra={"fields": {"path": request.url.path, "request_id": request_id(request)}},
    )
    return error_response(request, 500, "internal", "the admin API failed; the log has the details")


def install(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(request, exc.status, exc.code, exc.message)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        extra = dict(exc.headers or {})
        return error_response(
            request, exc.status_code, _CODES.get(exc.status_code, "error"), str(exc.detail), **extra
        )

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        return error_response(request, 422, "invalid_request", problems)

    async def bad_filter(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, 400, "bad_filter", str(exc))

    async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, 503, "store_unavailable", str(exc))

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        return crashed(request, exc)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(FilterError, bad_filter)
    app.add_exception_handler(StoreError, store_unavailable)
    app.add_exception_handler(Exception, internal)
