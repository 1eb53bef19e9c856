"""JSON schema -> GBNF (the converter's output, tightened for strict JSON)."""

from __future__ import annotations

import pytest

from app.engine.grammar import GrammarError, schema_to_gbnf


def test_strings_refuse_control_characters() -> None:
    text = schema_to_gbnf({"type": "object", "properties": {"a": {"type": "string"}}})
    assert r'char ::= [^"\\\x7F\x00-\x1F]' in text
    assert "root ::=" in text


def test_bounded_string() -> None:
    text = schema_to_gbnf({"type": "string", "maxLength": 3})
    assert "(char (char (char)?)?)?" in text


def test_any_object() -> None:
    assert "root ::= object" in schema_to_gbnf({"type": "object"})


def test_unenforceable_schema_is_an_error() -> None:
    with pytest.raises(GrammarError):
        schema_to_gbnf({"type": "string", "pattern": "[a-z]+"})  # not anchored
    with pytest.raises(GrammarError):
        schema_to_gbnf({"$ref": "#/$defs/missing"})
