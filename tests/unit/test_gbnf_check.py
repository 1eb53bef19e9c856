"""Grammars that would crash or stall llama.cpp are refused before it sees them (pure)."""

from __future__ import annotations

import pytest

from app.engine.gbnf_check import MAX_GRAMMAR_DEPTH, GrammarUnsafe, check_gbnf

JSON_STRING = (
    'root ::= "\\"" char* "\\"" space\n'
    'char ::= [^"\\\\\\x7F\\x00-\\x1F] | [\\\\] (["\\\\bfnrt] | "u" [0-9a-fA-F]{4})\n'
    'space ::= | " " | "\\n" [ \\t]{0,20}\n'
)


@pytest.mark.parametrize("grammar", [
    JSON_STRING,
    'root ::= "a" | "b" ( "c" | "d" )? x*\nx ::= [a-z] # comment\n',
    'root ::= ( "[" ( item ( "," item )* )? "]" )\nitem ::= [0-9]+ | "null"\n',
    'root ::= "x"{2,5} .{0,3} [^a]\n',
    'root ::= "" | "\\u00e9" [\\U0001F600-\\U0001F64F]\n',
    "root ::= (\n  \"a\"\n  | \"b\"\n)\n",
])
def test_safe_grammars_pass(grammar: str) -> None:
    check_gbnf(grammar)


@pytest.mark.parametrize(("grammar", "why"), [
    ('root ::= "a" [z-a]\n', "empty"),
    ('root ::= "\\u0000"\n', "U\\+0000"),
    ('root ::= "a" ( "b" [\\x00] )?\n', "no character"),
    ('root ::= [\\uD800-\\uDFFF]\n', "no character"),
    ('root ::= [^\\x01-\\U0010FFFF]\n', "no character"),
    ('root ::= "a" loop\nloop ::= "b" loop\n', "no finite match"),
    ('root ::= missing\n', "undefined"),
    ('root ::= "x"{3000}\n', "repetition"),
    ('root ::= "x"{5,2}\n', "maximum"),
    ('root ::= <[1000]>\n', "unsupported"),
    ('start ::= "x"\n', "no 'root'"),
    ("root ::= " + "(" * (MAX_GRAMMAR_DEPTH + 2) + '"a"' + ")" * (MAX_GRAMMAR_DEPTH + 2),
     "deeper"),
    ('root ::= "a" ( "b"\n', "unclosed"),
    ('root ::= "\\q"\n', "escape"),
    ('root ::= "a"\nroot ::= "b"\n', "twice"),
])
def test_unsafe_grammars_are_refused(grammar: str, why: str) -> None:
    with pytest.raises(GrammarUnsafe, match=why):
        check_gbnf(grammar)


def test_huge_grammar_is_refused() -> None:
    with pytest.raises(GrammarUnsafe, match="larger"):
        check_gbnf('root ::= "' + "a" * 300_000 + '"\n')


def test_deep_nesting_is_checked_without_recursion() -> None:
    depth = MAX_GRAMMAR_DEPTH
    check_gbnf("root ::= " + '("a" ' * depth + ")?" * depth + "\n")
