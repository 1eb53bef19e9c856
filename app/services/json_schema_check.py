"""Which JSON-schema keywords the grammar converter can enforce (pure, front side).

The worker turns a schema into a GBNF grammar with llama-cpp-python's converter. Keywords
it would silently ignore are refused here instead, before the first byte, so a client never
gets output that looks constrained but is not.
"""

from __future__ import annotations

import re
from typing import Any

from app.errors import InvalidRequest

MAX_SCHEMA_DEPTH = 32
# Bounds the grammar can carry: the converter nests one group per optional repetition, and
# llama.cpp parses and walks those groups recursively (deep grammars crash the worker; large
# or ambiguous ones stall every stream of the model while the sampler runs).
MAX_LENGTH_BOUND = 1000  # minLength / maxLength
MAX_ITEMS_BOUND = 100  # minItems / maxItems
MAX_PATTERN_REPEAT = 100  # {m,n} counts inside a `pattern`
MAX_PATTERN_CHARS = 1000
MAX_PATTERN_VARYING = 16  # ?, *, + and {m,n} in one pattern
_REPEAT = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")

# enforced by the grammar
_ENFORCED = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "prefixItems",
    "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "$defs",
    "definitions", "minLength", "maxLength", "pattern", "format",
})
# annotations: no effect on validity
_ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "$schema", "$id", "$comment",
    "deprecated", "readOnly", "writeOnly", "nullable", "discriminator",
})
_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
# sub-schema holders: name -> how children are laid out
_MAP_OF_SCHEMAS = ("properties", "$defs", "definitions")
_LIST_OF_SCHEMAS = ("anyOf", "oneOf", "allOf", "prefixItems")


class SchemaUnsupported(ValueError):
    """A keyword or construct the grammar cannot enforce; `where` is a JSON pointer."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(f"{message} (at {where or '/'})")
        self.where = where


def check_schema(schema: Any, where: str = "", depth: int = 0) -> None:
    """Raise SchemaUnsupported if `schema` uses something the grammar cannot enforce."""
    if depth > MAX_SCHEMA_DEPTH:
        raise SchemaUnsupported(f"schema nests deeper than {MAX_SCHEMA_DEPTH} levels", where)
    if isinstance(schema, bool):
        if schema:
            return
        raise SchemaUnsupported("a false schema is not supported", where)
    if not isinstance(schema, dict):
        raise SchemaUnsupported("a schema must be an object", where)
    for key in schema:
        if key not in _ENFORCED and key not in _ANNOTATIONS:
            raise SchemaUnsupported(f"JSON-schema keyword {key!r} is not supported", where)
    kinds = schema.get("type")
    for kind in kinds if isinstance(kinds, list) else [kinds] if kinds is not None else []:
        if kind not in _TYPES:
            raise SchemaUnsupported(f"unknown type {kind!r}", where)
    ref = schema.get("$ref")
    if ref is not None and not (isinstance(ref, str) and ref.startswith("#/")):
        raise SchemaUnsupported(f"only local $ref ('#/...') is supported, got {ref!r}", where)
    for key in _MAP_OF_SCHEMAS:
        children = schema.get(key)
        if children is None:
            continue
        if not isinstance(children, dict):
            raise SchemaUnsupported(f"{key!r} must be an object", where)
        for name, child in children.items():
            check_schema(child, f"{where}/{key}/{name}", depth + 1)
    for key in _LIST_OF_SCHEMAS:
        children = schema.get(key)
        if children is None:
            continue
        if not isinstance(children, list) or not children:
            raise SchemaUnsupported(f"{key!r} must be a non-empty array", where)
        for i, child in enumerate(children):
            check_schema(child, f"{where}/{key}/{i}", depth + 1)
    for key in ("items", "additionalProperties"):
        child = schema.get(key)
        if isinstance(child, dict):
            check_schema(child, f"{where}/{key}", depth + 1)
        elif child is not None and not isinstance(child, bool):
            raise SchemaUnsupported(f"{key!r} must be a schema or a boolean", where)
    if schema.get("items") is False:
        raise SchemaUnsupported("'items': false is not supported", where)
    required = schema.get("required")
    if required is not None and not (
        isinstance(required, list) and all(isinstance(r, str) for r in required)
    ):
        raise SchemaUnsupported("'required' must be an array of strings", where)
    for key, bound in (("minLength", MAX_LENGTH_BOUND), ("maxLength", MAX_LENGTH_BOUND),
                       ("minItems", MAX_ITEMS_BOUND), ("maxItems", MAX_ITEMS_BOUND)):
        value = schema.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 0 or value > bound):
            raise SchemaUnsupported(f"{key!r} must be an integer in [0, {bound}] (the limit "
                                    "of grammar-constrained output)", where)
    if "pattern" in schema:
        _check_pattern(schema["pattern"], where)
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise SchemaUnsupported("'enum' must be a non-empty array", where)


def _check_pattern(pattern: Any, where: str) -> None:
    if not isinstance(pattern, str):
        raise SchemaUnsupported("'pattern' must be a string", where)
    if len(pattern) > MAX_PATTERN_CHARS:
        raise SchemaUnsupported(f"'pattern' is longer than {MAX_PATTERN_CHARS} characters",
                                where)
    for match in _REPEAT.finditer(pattern):
        for count in match.groups():
            if count and (len(count) > 4 or int(count) > MAX_PATTERN_REPEAT):
                raise SchemaUnsupported(
                    f"'pattern' repeats {match.group(0)}: counts above {MAX_PATTERN_REPEAT} "
                    "are not supported", where)
    problem = pattern_ambiguity(pattern)
    if problem is not None:
        raise SchemaUnsupported(f"'pattern' {problem}", where)


def _quantifier(pattern: str, i: int) -> tuple[int, int, bool]:
    """(index after the quantifier at `i`, its minimum, whether its count varies)."""
    ch = pattern[i] if i < len(pattern) else ""
    if ch in "?*+":
        i += 1
        if i < len(pattern) and pattern[i] in "?+":  # lazy / possessive modifiers
            i += 1
        return i, 1 if ch == "+" else 0, True
    match = _REPEAT.match(pattern, i)
    if ch == "{" and match is not None:
        low = int(match.group(1) or 0)
        high = match.group(2)
        varies = "," in match.group(0) and high != str(low)
        return match.end(), low, varies
    return i, 1, False


def pattern_ambiguity(pattern: str) -> str | None:
    """Why the grammar of `pattern` would make llama.cpp's sampler slow, or None.

    Its parser keeps one stack per way the text so far can be parsed: a repeated part that
    can match empty text (`(a?){50}`, `(a*)*`) or many parts of varying length in a row
    (`a?a?a?...`) multiply those ways, and every token then costs that many times more.
    """
    stack: list[list[bool]] = [[True]]  # per open group: nullable so far, per alternative
    varying = 0
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "(":
            stack.append([True])
            i += 1
            if pattern.startswith("?:", i):
                i += 2
            continue
        if ch == "|":
            stack[-1].append(True)
            i += 1
            continue
        if ch == ")":
            if len(stack) == 1:
                return None  # unbalanced: the converter refuses it
            nullable = any(stack.pop())
            i += 1
        elif ch in "^$":
            i += 1
            continue
        elif ch == "[":
            end = pattern.find("]", i + 2 if pattern.startswith("[^", i) else i + 1)
            i = n if end < 0 else end + 1
            nullable = False
        elif ch == "\\":
            i += 2
            nullable = False
        else:
            i += 1
            nullable = False
        i, low, varies = _quantifier(pattern, i)
        if varies or low != 1:
            if nullable and (varies or low > 1):
                return "repeats a part that can match empty text (e.g. (a?){n}, (a*)*)"
            varying += varies
        stack[-1][-1] = stack[-1][-1] and (nullable or low == 0)
    if varying > MAX_PATTERN_VARYING:
        return (f"has {varying} parts of varying length; at most {MAX_PATTERN_VARYING} are "
                "supported")
    return None


def checked_schema(schema: Any, param: str) -> dict[str, Any]:
    """`schema` if the grammar can enforce it, else InvalidRequest naming `param`."""
    try:
        check_schema(schema)
    except SchemaUnsupported as exc:
        raise InvalidRequest(f"{param}: {exc}", param=param) from exc
    return schema if isinstance(schema, dict) else {}
