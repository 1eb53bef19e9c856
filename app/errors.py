"""Domain exceptions and the closed set of engine error codes.

No HTTP here: api/errors.py maps each exception and each engine code to a status and
envelope, once. The worker reports failures with an `EngineCode`; the front turns them
into `EngineFailure` (see `engine_failure`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class EngineCode(StrEnum):
    """Every way a request can fail inside a worker (shared by worker and front)."""

    INVALID_REQUEST = "invalid_request"  # a field the worker cannot use (param in details)
    INVALID_N = "invalid_n"  # more choices than the model's sequence slots
    EMPTY_PROMPT = "empty_prompt"  # the prompt tokenizes to nothing
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    NO_CHAT_TEMPLATE = "no_chat_template"
    TEMPLATE_ERROR = "template_error"  # the chat template failed on these messages
    GRAMMAR_REJECTED = "grammar_rejected"  # the JSON schema's grammar cannot be enforced
    DECODE_FAILED = "decode_failed"  # llama_decode returned an error (e.g. KV cache full)
    WORKER_CRASHED = "worker_crashed"  # the worker process died
    CRASHED_WORKER = "crashed_worker"  # this request's input killed the worker (see ipc.Guard)
    WORKER_STOPPED = "worker_stopped"  # the model was unloaded while the request ran
    INTERNAL = "internal"  # a bug in the worker (the exception is logged there)


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


class NotFound(HaloError):
    """Something other than a model (a stored response) does not exist."""

    code = "not_found"


class ContextLengthExceeded(HaloError):
    code = "context_length_exceeded"


class ModelLoadFailed(HaloError):
    code = "model_load_failed"


class ModelBackingOff(ModelLoadFailed):
    """The model's worker died too often in a row; it is not restarted before retry_after."""

    def __init__(self, message: str, *, retry_after: float, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


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


class EngineFailure(HaloError):
    """A worker reported `engine_code` for this request."""

    def __init__(self, engine_code: EngineCode, message: str, *, param: str | None = None,
                 **details: Any) -> None:
        super().__init__(message, param=param, **details)
        self.engine_code = engine_code
        self.code = engine_code.value


def engine_failure(code: str, message: str, details: dict[str, Any]) -> EngineFailure:
    """The domain error of a worker failure; an unknown code counts as INTERNAL."""
    try:
        engine_code = EngineCode(code)
    except ValueError:
        engine_code, message = EngineCode.INTERNAL, f"{code}: {message}"
    param = details.get("param")
    rest = {k: v for k, v in details.items() if k != "param"}
    if engine_code is EngineCode.CONTEXT_LENGTH_EXCEEDED and param is None:
        param = "messages"
    return EngineFailure(engine_code, message, param=param if isinstance(param, str) else None,
                         **rest)


class HubError(HaloError):
    """The model hub cannot be used for this pull or fit (unreachable, refused, bad data)."""

    code = "hub_error"


class HubNotFound(HubError):
    """The repo, file or quantization variant does not exist on the hub."""

    code = "not_found_on_hub"


class BadModelRef(HubError):
    """`REPO[:QUANT]` is malformed or ambiguous; the message lists the choices."""

    code = "invalid_model_ref"


class ChecksumMismatch(HubError):
    """A downloaded file's sha256 differs from the hub's LFS hash (the file was deleted)."""

    code = "checksum_mismatch"


class InsufficientDisk(HubError):
    """Not enough free disk for the files to download (both sizes in the message)."""

    code = "insufficient_storage"


class ModelInUse(HaloError):
    """A loaded model cannot be removed without force."""

    code = "model_in_use"
