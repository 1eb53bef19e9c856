"""Text that may cross into llama.cpp must be valid Unicode (pure, front side).

JSON allows `"\\ud800"`, a lone UTF-16 surrogate that Python keeps in a `str` but that
cannot be encoded as UTF-8; the worker would fail on it while tokenizing or rendering the
template. Like OpenAI, such requests are refused with 400 before they reach a worker.
"""

from __future__ import annotations

from typing import Any

from app.engine.schema import GenerateRequest
from app.errors import InvalidRequest

MAX_WALK_DEPTH = 64  # deeper structures are refused (templates and grammars recurse)
_TOO_DEEP = f"nests deeper than {MAX_WALK_DEPTH} levels"


def bad_text(value: Any, path: str = "", depth: int = 0) -> str | None:
    """JSON path of the first string (or key) in `value` that is not valid Unicode."""
    if depth > MAX_WALK_DEPTH:
        return f"{path} {_TOO_DEEP}"
    if isinstance(value, str):
        return None if _valid(value) else path
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and not _valid(key):
                return path or "."
            found = bad_text(item, sub, depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = bad_text(item, f"{path}[{i}]", depth + 1)
            if found is not None:
                return found
    return None


def _valid(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_request(request: GenerateRequest) -> None:
    """InvalidRequest naming the field if any text of `request` is not valid Unicode."""
    fields: list[tuple[str, Any]] = [
        ("messages", request.messages), ("prompt", request.prompt), ("tools", request.tools),
        ("stop", request.stop), (request.json_schema_param, request.json_schema),
    ]
    for param, value in fields:
        where = bad_text(value, param)
        if where is None:
            continue
        if where.endswith(_TOO_DEEP):
            raise InvalidRequest(where, param=param)
        raise InvalidRequest(f"{where}: the text is not valid Unicode (a lone UTF-16 "
                             "surrogate?)", param=param)
