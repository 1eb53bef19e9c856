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


@pytest.mark.parametrize(("schema", "why"), [
    ({"type": "string", "maxLength": 100_000}, "maxLength"),
    ({"type": "string", "minLength": 1001}, "minLength"),
    ({"type": "array", "maxItems": 101}, "maxItems"),
    ({"type": "string", "maxLength": True}, "maxLength"),
    ({"type": "string", "pattern": "^a{1000000}$"}, "repeats"),
    ({"type": "string", "pattern": "^(ab){2,5000}$"}, "repeats"),
    ({"type": "string", "pattern": "x" * 1001}, "longer"),
    ({"type": "string", "pattern": 5}, "must be a string"),
])
def test_bounds_that_make_grammars_too_deep_or_large(schema: dict[str, Any], why: str) -> None:
    with pytest.raises(SchemaUnsupported, match=why):
        check_schema(schema)


def test_bounds_within_the_limits_pass() -> None:
    check_schema({"type": "string", "minLength": 1, "maxLength": 1000,
                  "pattern": "^[a-z]{1,100}(-[0-9]{2})?$"})
    check_schema({"type": "array", "items": {"type": "integer"}, "maxItems": 100})


@pytest.mark.parametrize("pattern", [
    "^(a?){100}$", "^(a*)*$", "^((a|aa)*)*b$", "^(a|)+$", "^(?:a?)+$", "^" + "a?" * 20 + "$",
])
def test_patterns_that_multiply_parse_stacks_are_refused(pattern: str) -> None:
    with pytest.raises(SchemaUnsupported, match="pattern"):
        check_schema({"type": "string", "pattern": pattern})


@pytest.mark.parametrize("pattern", [
    "^[a-z]{1,100}(-[0-9]{2})?$", "^(ab)+$", "^\\d{3}-\\d{4}$", "^(x{99}){99}$",
    "^[A-Z][a-z]*( [A-Z][a-z]*)*$", "^[^@]+@[^@]+\\.[a-z]{2,}$",
])
def test_ordinary_patterns_pass(pattern: str) -> None:
    check_schema({"type": "string", "pattern": pattern})
