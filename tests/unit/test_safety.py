"""Text that cannot be encoded never reaches a worker (pure)."""

from __future__ import annotations

import pytest

from app.engine.schema import GenerateRequest
from app.errors import InvalidRequest
from app.services.safety import MAX_WALK_DEPTH, bad_text, check_request


def test_finds_the_first_bad_string_with_its_path() -> None:
    value = {"a": ["ok", {"b": "x\ud800"}]}
    assert bad_text(value, "messages") == "messages.a[1].b"
    assert bad_text({"k\udc00": 1}, "tools") == "tools"
    assert bad_text({"fine": ["é", "\u0000", "😀"]}) is None


@pytest.mark.parametrize(("field", "value", "param"), [
    ("messages", [{"role": "user", "content": "\ud83d"}], "messages"),
    ("prompt", "abc\udfff", "prompt"),
    ("tools", [{"function": {"description": "\ud800"}}], "tools"),
    ("stop", ["\ud800"], "stop"),
    ("json_schema", {"pattern": "^\ud800$"}, "response_format"),
])
def test_check_request_names_the_field(field: str, value: object, param: str) -> None:
    req = GenerateRequest(request_id="r")
    setattr(req, field, value)
    with pytest.raises(InvalidRequest) as exc:
        check_request(req)
    assert exc.value.param == param


def test_too_deep_structures_are_refused() -> None:
    deep: object = "x"
    for _ in range(MAX_WALK_DEPTH + 5):
        deep = [deep]
    req = GenerateRequest(request_id="r", tools=[{"parameters": deep}])
    with pytest.raises(InvalidRequest, match="deeper"):
        check_request(req)
