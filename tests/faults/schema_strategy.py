"""Hypothesis strategies from the JSON schemas of an OpenAPI document (test-only).

Covers what FastAPI emits for halo's request models: $ref, anyOf, object (properties,
required, additionalProperties), array (items, min/maxItems), string (min/maxLength), number
and integer bounds, boolean, null, enum and const. With `valid_ratio` < 1 it also breaks
values on purpose (wrong types, dropped required fields, out-of-range numbers), since a
fuzz of an API is about what it refuses as much as what it accepts.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

JSON_LEAF = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
             | st.floats(allow_nan=False) | st.text(max_size=20))
ANY_JSON = st.recursive(JSON_LEAF, lambda kids: st.lists(kids, max_size=3)
                        | st.dictionaries(st.text(max_size=8), kids, max_size=3), max_leaves=8)


class SchemaStrategies:
    def __init__(self, document: dict[str, Any], break_ratio: float = 0.15) -> None:
        self.schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
        self.break_ratio = break_ratio

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.schemas[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def for_schema(self, schema: Any, depth: int = 0) -> st.SearchStrategy[Any]:
        valid = self._valid(schema, depth)
        if self.break_ratio <= 0:
            return valid
        return st.one_of(valid, valid, valid, valid, ANY_JSON) if depth else valid

    def _valid(self, schema: Any, depth: int) -> st.SearchStrategy[Any]:
        if not isinstance(schema, dict) or depth > 6:
            return ANY_JSON
        schema = self.resolve(schema)
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        if "anyOf" in schema:
            return st.one_of([self.for_schema(s, depth + 1) for s in schema["anyOf"]])
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            return self._object(schema, depth)
        if kind == "array":
            items = self.for_schema(schema.get("items", {}), depth + 1)
            low = schema.get("minItems", 0)
            high = min(schema.get("maxItems", low + 4), low + 4)
            return st.lists(items, min_size=low, max_size=high)
        if kind == "string":
            low = schema.get("minLength", 0)
            return st.text(min_size=low, max_size=max(low, min(schema.get("maxLength", 40), 40)))
        if kind in ("integer", "number"):
            return self._number(schema, kind)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        return ANY_JSON

    def _number(self, schema: dict[str, Any], kind: str) -> st.SearchStrategy[Any]:
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        edges = [v for v in (low, high) if v is not None]
        if kind == "integer":
            ints = st.integers(None if low is None else int(low),
                               None if high is None else int(high))
            return ints | st.sampled_from([*edges, -1, 0, 2**63, -(2**63) - 1])
        floats = st.floats(low, high, allow_nan=False, allow_infinity=False)
        return floats | st.sampled_from([*edges, -1.0, 1e308])

    def _object(self, schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
        props: dict[str, Any] = schema.get("properties", {})
        required = [k for k in schema.get("required", []) if k in props]
        optional = [k for k in props if k not in required]

        @st.composite
        def build(draw: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key in required:
                if self.break_ratio and draw(st.floats(0, 1)) < self.break_ratio / 4:
                    continue  # a required field left out
                out[key] = draw(self.for_schema(props[key], depth + 1))
            for key in draw(st.lists(st.sampled_from(optional), unique=True,
                                     max_size=len(optional))) if optional else []:
                out[key] = draw(self.for_schema(props[key], depth + 1))
            if schema.get("additionalProperties") and draw(st.booleans()):
                out.update(draw(st.dictionaries(st.text(max_size=8), ANY_JSON, max_size=2)))
            return out

        return build()
