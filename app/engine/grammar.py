"""JSON schema -> GBNF grammar (worker side), with llama-cpp-python's converter.

The grammar is checked (gbnf_check) before llama.cpp parses it: its parser and sampler
abort the process on grammars that are too deep or can never be satisfied.

The converter's string rule lets raw control characters (newline, tab...) into JSON
strings, which strict JSON parsers refuse; the rule is tightened here.
"""

from __future__ import annotations

import json
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from app.engine.gbnf_check import GrammarUnsafe, check_gbnf

# strict JSON: no raw control characters inside strings
_LOOSE_CHAR = r'char ::= [^"\\] |'
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


class GrammarError(ValueError):
    """The schema cannot be turned into a grammar."""


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """GBNF text (root rule `root`) that accepts exactly the JSON matching `schema`."""
    try:
        text = str(json_schema_to_gbnf(json.dumps(schema)))
    except RecursionError as exc:
        raise GrammarError("the JSON schema is too deeply nested") from exc
    except Exception as exc:  # the converter asserts/raises on what it cannot handle
        detail = str(exc) or type(exc).__name__
        raise GrammarError(f"the JSON schema cannot be enforced: {detail}") from exc
    text = text.replace(_LOOSE_CHAR, _STRICT_CHAR)
    try:
        check_gbnf(text)
    except GrammarUnsafe as exc:
        raise GrammarError(f"the JSON schema cannot be enforced: {exc}") from exc
    return text
