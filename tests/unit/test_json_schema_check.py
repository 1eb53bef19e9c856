"""The front refuses JSON-schema keywords the grammar cannot enforce."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from app.errors import InvalidRequest
from app.services.json_schema_check import SchemaUnsupported, check_schema, checked_schema


class Address(BaseModel):
    street: str = Field(max_length=40)
    zip: str | None = None


class Person(BaseModel):
    name: str
    tags: list[str] = Field(default_factory=list, max_length=3)
    home: Address
    kind: str = Field("a", pattern="^[ab]$")


def test_pydantic_schemas_pass() -> None:
    check_schema(Person.model_json_schema())
    check_schema({"type": "object"})
    check_schema({})
    check_schema(True)


@pytest.mark.parametrize(
    ("schema", "where", "word"),
    [
        ({"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}}},
         "/properties/a", "minimum"),
        ({"not": {"type": "string"}}, "", "not"),
        ({"type": "thing"}, "", "thing"),
        ({"$ref": "https://example.com/s.json"}, "", "$ref"),
        ({"anyOf": []}, "", "anyOf"),
        ({"type": "array", "items": {"uniqueItems": True}}, "/items", "uniqueItems"),
        ({"type": "string", "maxLength": -1}, "", "maxLength"),
        ("nope", "", "object"),
        (False, "", "false"),
    ],
)
def test_unsupported_is_named(schema: Any, where: str, word: str) -> None:
    with pytest.raises(SchemaUnsupported) as info:
        check_schema(schema)
    assert info.value.where == where
    assert word in str(info.value)


def test_deep_nesting_refused() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        schema = {"type": "array", "items": schema}
    with pytest.raises(SchemaUnsupported):
        check_schema(schema)


def test_checked_schema_names_param() -> None:
    with pytest.raises(InvalidRequest) as info:
        checked_schema({"if": {}}, "response_format")
    assert info.value.param == "response_format"
    assert checked_schema(True, "tools") == {}
