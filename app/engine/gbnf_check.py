"""Refuse GBNF grammars that would crash or stall llama.cpp, before it sees them (pure).

llama.cpp's grammar code is not defensive:
* its parser recurses once per nested group, so a grammar nested tens of thousands of
  levels deep (what the JSON-schema converter makes of a large `maxLength`) overflows the
  stack of the worker;
* a grammar that can reach a point where no character may follow (an empty character
  range such as `[z-a]`, a literal holding U+0000, a rule that can never end) leaves the
  sampler no allowed token; the next accept then aborts the process.

`check_gbnf` parses the grammar without recursion and refuses, with a reason, grammars
that are too large or too deep, that use syntax outside what the converter emits, or that
contain any element, reachable from `root`, that cannot be completed by real text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_GRAMMAR_CHARS = 256 * 1024
MAX_GRAMMAR_DEPTH = 1100  # nested groups (maxLength 1000 nests ~1000 deep)
MAX_REPEAT = 2000  # llama.cpp's own bound on {m,n}
_MAX_CODE = 0x10FFFF
# what text decoded from tokens can contain: no U+0000, no surrogates
_PRODUCIBLE = ((1, 0xD7FF), (0xE000, _MAX_CODE))
_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_SIMPLE_ESCAPES = {"t": 9, "r": 13, "n": 10, "\\": 92, '"': 34, "[": 91, "]": 93, "-": 45}


class GrammarUnsafe(ValueError):
    """The grammar would crash or stall llama.cpp, or can never be satisfied."""


@dataclass
class _Alt:
    refs: list[str] = field(default_factory=list)  # rules this alternative needs
    dead: str | None = None  # why an element of it can never match


Rules = dict[str, list[_Alt]]


def _producible(ranges: list[tuple[int, int]], negated: bool) -> bool:
    """Whether some producible code point is in (or, negated, outside) `ranges`."""
    if not negated:
        return any(lo <= min(hi, p_hi) and max(lo, p_lo) <= hi
                   for lo, hi in ranges for p_lo, p_hi in _PRODUCIBLE)
    for p_lo, p_hi in _PRODUCIBLE:
        at = p_lo
        for lo, hi in sorted(ranges):
            if hi < at:
                continue
            if lo > at:
                return True  # a gap [at, lo-1] inside this producible span
            at = hi + 1
            if at > p_hi:
                break
        if at <= p_hi:
            return True
    return False


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.rules: Rules = {}
        self.defined: set[str] = set()
        self.groups = 0

    def fail(self, message: str) -> GrammarUnsafe:
        return GrammarUnsafe(f"{message} at offset {self.pos} of the grammar")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, newlines: bool) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch in " \t" or (newlines and ch in "\r\n"):
                self.pos += 1
            elif ch == "#":
                while self.pos < len(text) and text[self.pos] not in "\r\n":
                    self.pos += 1
            else:
                return

    def name(self) -> str:
        start = self.pos
        while self.peek() and self.peek() in _NAME:
            self.pos += 1
        if self.pos == start:
            raise self.fail("expected a rule name")
        return self.text[start:self.pos]

    def char(self) -> int:
        text = self.text
        if self.pos >= len(text):
            raise self.fail("unexpected end")
        ch = text[self.pos]
        if ch != "\\":
            self.pos += 1
            return ord(ch)
        kind = text[self.pos + 1: self.pos + 2]
        if kind in _SIMPLE_ESCAPES:
            self.pos += 2
            return _SIMPLE_ESCAPES[kind]
        digits = {"x": 2, "u": 4, "U": 8}.get(kind)
        if digits is None:
            raise self.fail("unknown escape")
        hex_text = text[self.pos + 2: self.pos + 2 + digits]
        try:
            value = int(hex_text, 16)
        except ValueError:
            raise self.fail("bad hex escape") from None
        if len(hex_text) != digits:
            raise self.fail("bad hex escape")
        self.pos += 2 + digits
        return value

    def literal(self) -> str | None:
        """Parse "..." (at the quote); the reason it can never match, or None."""
        self.pos += 1
        dead = None
        while self.peek() != '"':
            code = self.char()
            if code == 0 or code > _MAX_CODE or 0xD800 <= code <= 0xDFFF:
                dead = f"a literal holds the character U+{code:04X}, which text cannot contain"
            elif (code < 0x20 and code not in (9, 10, 13)) or code == 0x7F:
                # JSON text never holds a raw control character: the converter let an
                # enum/const value's escape through, and the model may have no such token
                dead = f"a literal holds the control character U+{code:04X}"
        self.pos += 1
        return dead

    def char_class(self) -> str | None:
        """Parse [...] (at the bracket); the reason it can never match, or None."""
        self.pos += 1
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        ranges: list[tuple[int, int]] = []
        while self.peek() != "]":
            lo = self.char()
            hi = lo
            if self.peek() == "-" and self.text[self.pos + 1: self.pos + 2] not in ("]", ""):
                self.pos += 1
                hi = self.char()
            if hi < lo:
                return self._skip_class(f"the character range U+{lo:04X}-U+{hi:04X} is empty")
            ranges.append((lo, hi))
        self.pos += 1
        if not _producible(ranges, negated):
            return "a character class matches no character text can contain"
        return None

    def _skip_class(self, reason: str) -> str:
        while self.peek() != "]":
            self.char()
        self.pos += 1
        return reason

    def repetition(self) -> tuple[int, int | None]:
        """Parse {m}, {m,} or {m,n} (at the brace)."""
        end = self.text.find("}", self.pos)
        if end < 0:
            raise self.fail("unclosed repetition")
        body = self.text[self.pos + 1: end].replace(" ", "")
        low, comma, high = body.partition(",")
        if not low.isascii() or not low.isdigit() or (high and not (high.isascii()
                                                                     and high.isdigit())):
            raise self.fail("bad repetition")
        if len(low) > 6 or len(high) > 6 or int(low) > MAX_REPEAT or (
                high and int(high) > MAX_REPEAT):
            raise self.fail(f"a repetition count is above {MAX_REPEAT}")
        self.pos = end + 1
        m = int(low)
        n = m if not comma else (int(high) if high else None)
        if n is not None and n < m:
            raise self.fail("a repetition's maximum is below its minimum")
        return m, n

    def rule_body(self, rule: str) -> None:
        """Alternatives up to the end of line, groups become rules of their own."""
        stack: list[tuple[str, list[_Alt]]] = [(rule, [_Alt()])]
        has_item = False
        while True:
            self.skip(newlines=len(stack) > 1)
            ch = self.peek()
            name, alts = stack[-1]
            alt = alts[-1]
            if ch in ("", "\n", "\r"):
                if len(stack) > 1:
                    raise self.fail("unclosed group")
                self.rules[rule] = alts
                return
            if ch == '"':
                reason = self.literal()
                alt.dead = alt.dead or reason
                has_item = True
            elif ch == "[":
                reason = self.char_class()
                alt.dead = alt.dead or reason
                has_item = True
            elif ch == ".":
                self.pos += 1
                has_item = True
            elif ch in _NAME:
                alt.refs.append(self.name())
                has_item = True
            elif ch == "(":
                self.pos += 1
                if len(stack) > MAX_GRAMMAR_DEPTH:
                    raise GrammarUnsafe(f"the grammar nests deeper than {MAX_GRAMMAR_DEPTH} "
                                        "levels (lower maxLength/maxItems or simplify)")
                self.groups += 1
                stack.append((f"({self.groups}", [_Alt()]))
                has_item = False
            elif ch == ")":
                if len(stack) == 1:
                    raise self.fail("unbalanced ')'")
                self.pos += 1
                stack.pop()
                self.rules[name] = alts
                stack[-1][1][-1].refs.append(name)
                has_item = True
            elif ch == "|":
                self.pos += 1
                alts.append(_Alt())
                has_item = False
            elif ch in "*+?":
                if not has_item:
                    raise self.fail("a quantifier without an element")
                self.pos += 1
            elif ch == "{":
                if not has_item:
                    raise self.fail("a repetition without an element")
                self.repetition()
            else:
                raise self.fail(f"unsupported grammar syntax {ch!r}")

    def parse(self) -> Rules:
        while True:
            self.skip(newlines=True)
            if self.pos >= len(self.text):
                return self.rules
            rule = self.name()
            self.skip(newlines=False)
            if not self.text.startswith("::=", self.pos):
                raise self.fail("expected '::='")
            self.pos += 3
            if rule in self.defined:
                raise self.fail(f"rule {rule!r} is defined twice")
            self.defined.add(rule)
            self.rule_body(rule)


def _completable(rules: Rules) -> set[str]:
    """Rules that can derive some finite text (worklist fixpoint, no recursion)."""
    waiting: dict[str, list[tuple[str, list[int]]]] = {}
    done: set[str] = set()
    work: list[str] = []
    for name, alts in rules.items():
        for alt in alts:
            if alt.dead is not None:
                continue
            missing = [len(set(alt.refs))]
            if not missing[0]:
                work.append(name)
            for ref in set(alt.refs):
                waiting.setdefault(ref, []).append((name, missing))
    while work:
        name = work.pop()
        if name in done:
            continue
        done.add(name)
        for parent, missing in waiting.get(name, ()):
            missing[0] -= 1
            if missing[0] == 0:
                work.append(parent)
    return done


def check_gbnf(text: str, root: str = "root") -> None:
    """Raise GrammarUnsafe unless llama.cpp can safely parse and enforce `text`."""
    if len(text) > MAX_GRAMMAR_CHARS:
        raise GrammarUnsafe(f"the grammar is larger than {MAX_GRAMMAR_CHARS} characters "
                            "(lower maxLength/maxItems or simplify the schema)")
    if "\x00" in text:
        raise GrammarUnsafe("the grammar contains a NUL character")
    rules = _Parser(text).parse()
    if root not in rules:
        raise GrammarUnsafe(f"the grammar has no {root!r} rule")
    completable = _completable(rules)
    seen = {root}
    work = [root]
    endless = root not in completable
    while work:
        name = work.pop()
        for alt in rules[name]:
            if alt.dead is not None:
                raise GrammarUnsafe(f"the schema can never be satisfied: {alt.dead}")
            for ref in alt.refs:
                if ref not in rules:
                    raise GrammarUnsafe(f"the grammar refers to an undefined rule {ref!r}")
                endless = endless or ref not in completable
                if ref not in seen:
                    seen.add(ref)
                    work.append(ref)
    if endless:
        raise GrammarUnsafe("the schema can never be satisfied: part of it has no finite match")
