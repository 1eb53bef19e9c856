"""One table: domain exception -> HTTP status + OpenAI error envelope."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import errors

log = logging.getLogger(__name__)

# exception type -> (status, OpenAI error type)
_STATUS: tuple[tuple[type[errors.HaloError], int, str], ...] = (
    (errors.Unauthorized, 401, "invalid_request_error"),
    (errors.ModelNotFound, 404, "invalid_request_error"),
    (errors.ContextLengthExceeded, 400, "invalid_request_error"),
    (errors.InvalidRequest, 400, "invalid_request_error"),
    (errors.ModelBusy, 429, "rate_limit_error"),
    (errors.QueueFull, 503, "server_error"),
    (errors.InsufficientMemory, 503, "server_error"),
    (errors.ModelLoadFailed, 503, "server_error"),
    (errors.EngineError, 500, "server_error"),
    (errors.HubNotFound, 404, "invalid_request_error"),
    (errors.BadModelRef, 400, "invalid_request_error"),
    (errors.InsufficientDisk, 507, "server_error"),
    (errors.HubError, 502, "server_error"),
    (errors.ModelInUse, 409, "invalid_request_error"),
)

_BAD = (400, "invalid_request_error")
# every engine error code -> (status, OpenAI error type); test_engine_codes checks coverage
ENGINE_CODES: dict[errors.EngineCode, tuple[int, str]] = {
    errors.EngineCode.INVALID_REQUEST: _BAD,
    errors.EngineCode.INVALID_N: _BAD,
    errors.EngineCode.EMPTY_PROMPT: _BAD,
    errors.EngineCode.CONTEXT_LENGTH_EXCEEDED: _BAD,
    errors.EngineCode.NO_CHAT_TEMPLATE: _BAD,
    errors.EngineCode.TEMPLATE_ERROR: _BAD,
    errors.EngineCode.GRAMMAR_REJECTED: _BAD,
    errors.EngineCode.DECODE_FAILED: (503, "server_error"),
    errors.EngineCode.WORKER_CRASHED: (503, "server_error"),
    errors.EngineCode.WORKER_STOPPED: (503, "server_error"),
    errors.EngineCode.INTERNAL: (500, "server_error"),
}


_UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


def envelope(
    message: str, type_: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def status_of(exc: errors.HaloError) -> tuple[int, str]:
    if isinstance(exc, errors.EngineFailure):
        return ENGINE_CODES[exc.engine_code]
    for cls, status, type_ in _STATUS:
        if isinstance(exc, cls):
            return status, type_
    return 500, "server_error"


def error_body(exc: errors.HaloError) -> dict[str, Any]:
    _, type_ = status_of(exc)
    return envelope(exc.message, type_, exc.code, exc.param)


def error_response(exc: errors.HaloError) -> JSONResponse:
    status, _ = status_of(exc)
    headers = {}
    if isinstance(exc, errors.QueueFull | errors.ModelBackingOff):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(exc), status_code=status, headers=headers)


def param_path(loc: Sequence[int | str]) -> str | None:
    """('body', 'messages', 0, 'role') -> 'messages[0].role'."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS or "[" in part or "-" in part:
            continue  # union-branch labels pydantic adds to the location
        else:
            out += f".{part}" if out else str(part)
    return out or None


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first: dict[str, Any] = dict(exc.errors()[0]) if exc.errors() else {"loc": (),
                                                                         "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        message = f"request body is not valid JSON: {reason}".strip()
        return JSONResponse(envelope(message, "invalid_request_error", "invalid_json"), 400)
    param = param_path(first.get("loc", ()))
    message = f"{param}: {first['msg']}" if param else str(first["msg"])
    return JSONResponse(envelope(message, "invalid_request_error", "invalid_value", param), 400)


async def _halo(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.HaloError)
    return error_response(exc)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
        exc.status_code
    )
    return JSONResponse(
        envelope(str(exc.detail), type_, code), exc.status_code, headers=exc.headers
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"path": request.url.path})
    return JSONResponse(envelope("internal server error", "server_error", "internal_error"), 500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(errors.HaloError, _halo)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
