"""Domain exceptions. No HTTP here: api/errors.py maps each to a status and envelope."""

from __future__ import annotations

from typing import Any


class HaloError(Exception):
    """Base of every error a client can cause or see."""

    code: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.details = details


class InvalidRequest(HaloError):
    code = "invalid_request"


class ModelNotFound(HaloError):
    code = "model_not_found"


class ContextLengthExceeded(HaloError):
    code = "context_length_exceeded"


class ModelLoadFailed(HaloError):
    code = "model_load_failed"


class InsufficientMemory(HaloError):
    code = "insufficient_memory"


class QueueFull(HaloError):
    code = "queue_full"

    def __init__(self, message: str, *, retry_after: float = 1.0, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class ModelBusy(QueueFull):
    code = "model_busy"


class EngineError(HaloError):
    code = "engine_error"


class Unauthorized(HaloError):
    code = "invalid_api_key"
