"""One table: domain exception -> HTTP status + error envelope, per protocol family.

OpenAI routes answer `{"error": {"message", "type", "param", "code"}}`; Anthropic's
`/v1/messages*` answer `{"type": "error", "error": {"type", "message"}}` with its status
codes (529 when overloaded); Ollama's `/api/*` answer `{"error": "message"}`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
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
    (errors.NotFound, 404, "invalid_request_error"),
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
    errors.EngineCode.CRASHED_WORKER: _BAD,
    errors.EngineCode.WORKER_STOPPED: (503, "server_error"),
    errors.EngineCode.INTERNAL: (500, "server_error"),
}


_UNION_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict", "none"})


_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 404: "not_found_error", 405: "not_found_error",
                    413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}


def family(path: str) -> str:
    """The protocol family of a route: "anthropic", "ollama" or "openai"."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/api/"):
        return "ollama"
    return "openai"


def envelope(
    message: str, type_: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def anthropic_status(status: int) -> int:
    return 529 if status == 503 else status


def anthropic_envelope(status: int, message: str) -> dict[str, Any]:
    type_ = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else
                                 "invalid_request_error")
    return {"type": "error", "error": {"type": type_, "message": message}}


def family_response(path: str, status: int, body: dict[str, Any],
                    headers: Mapping[str, str] | None = None) -> JSONResponse:
    """Re-shape an OpenAI envelope for the family of `path`."""
    kind = family(path)
    message = str(body["error"]["message"])
    if kind == "anthropic":
        status = anthropic_status(status)
        return JSONResponse(anthropic_envelope(status, message), status, headers=headers)
    if kind == "ollama":
        return JSONResponse({"error": message}, status, headers=headers)
    return JSONResponse(body, status, headers=headers)


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


def error_response(exc: errors.HaloError, path: str = "/v1") -> JSONResponse:
    status, _ = status_of(exc)
    headers = {}
    if isinstance(exc, errors.QueueFull | errors.ModelBackingOff):
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    if isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    return family_response(path, status, error_body(exc), headers)


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
        return family_response(request.url.path, 400,
                               envelope(message, "invalid_request_error", "invalid_json"))
    param = param_path(first.get("loc", ()))
    message = f"{param}: {first['msg']}" if param else str(first["msg"])
    return family_response(request.url.path, 400,
                           envelope(message, "invalid_request_error", "invalid_value", param))


async def _halo(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.HaloError)
    return error_response(exc, request.url.path)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(
        exc.status_code
    )
    return family_response(request.url.path, exc.status_code,
                           envelope(str(exc.detail), type_, code), exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"path": request.url.path})
    return family_response(request.url.path, 500,
                           envelope("internal server error", "server_error", "internal_error"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(errors.HaloError, _halo)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
