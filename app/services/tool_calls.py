"""Tool calls in a model's text output -> OpenAI `tool_calls` (pure, front side).

Formats: Hermes/Qwen `<tool_call>{json}</tool_call>` blocks, Llama 3.x JSON
(`{"name", "parameters"}`, optionally after `<|python_tag|>`, several joined by `;`),
Mistral `[TOOL_CALLS]` (a JSON array, or `name[ARGS]{json}`), and a generic fallback: the
whole reply (optionally in a ``` fence) is one call object or an array of them. Only names
of offered tools count; anything malformed stays plain text.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

HERMES_OPEN = "<tool_call>"
HERMES_CLOSE = "</tool_call>"
MISTRAL_TAG = "[TOOL_CALLS]"
PYTHON_TAG = "<|python_tag|>"
# text that, at the start of a reply, may begin a tool call
LEADING_MARKERS = (HERMES_OPEN, MISTRAL_TAG, PYTHON_TAG, "{", "[", "```")

_HERMES_RE = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_FENCE_RE = re.compile(r"\A```(?:json)?\s*(.*?)\s*```\Z", re.DOTALL)
_MISTRAL_ARGS_RE = re.compile(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[ARGS\])?\s*(?=\{)")


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # JSON text of an object
    id: str = ""

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function",
                "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class Parsed:
    content: str | None
    calls: list[ToolCall]


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def _call_of(value: Any, names: Collection[str]) -> ToolCall | None:
    if not isinstance(value, dict):
        return None
    if isinstance(value.get("function"), dict):  # {"type": "function", "function": {...}}
        value = value["function"]
    name = value.get("name")
    if not isinstance(name, str) or (names and name not in names):
        return None
    args = value.get("arguments", value.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return ToolCall(name, json.dumps(args, ensure_ascii=False), new_call_id())


def _calls_of(value: Any, names: Collection[str]) -> list[ToolCall] | None:
    items = value if isinstance(value, list) else [value]
    calls = [_call_of(item, names) for item in items]
    if not calls or any(c is None for c in calls):
        return None
    return [c for c in calls if c is not None]


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _hermes(text: str, names: Collection[str]) -> Parsed | None:
    blocks = _HERMES_RE.findall(text)
    calls: list[ToolCall] = []
    for block in blocks:
        found = _calls_of(_json(block.strip()), names)
        if found is None:
            return None
        calls.extend(found)
    content = _HERMES_RE.sub("", text).strip()
    return Parsed(content or None, calls)


def _mistral(text: str, names: Collection[str]) -> list[ToolCall] | None:
    body = text.split(MISTRAL_TAG, 1)[1].strip()
    if body.startswith("["):
        return _calls_of(_json(body), names)
    calls: list[ToolCall] = []
    decoder = json.JSONDecoder()
    pos = 0
    for part in body.split(MISTRAL_TAG):  # some models repeat the tag per call
        pos = 0
        while pos < len(part.rstrip()):
            match = _MISTRAL_ARGS_RE.match(part, pos)
            if match is None:
                return None
            try:
                args, end = decoder.raw_decode(part, match.end())
            except ValueError:
                return None
            call = _call_of({"name": match.group(1), "arguments": args}, names)
            if call is None:
                return None
            calls.append(call)
            pos = end
    return calls or None


def _plain_json(text: str, names: Collection[str]) -> list[ToolCall] | None:
    fenced = _FENCE_RE.match(text)
    if fenced is not None:
        text = fenced.group(1)
    if text.startswith(PYTHON_TAG):
        text = text[len(PYTHON_TAG):].strip()
    value = _json(text)
    if value is None and ";" in text:  # Llama 3.x: several calls joined by ';'
        parts = [_json(p.strip()) for p in text.split(";") if p.strip()]
        value = parts if all(p is not None for p in parts) else None
    if isinstance(value, dict) and isinstance(value.get("tool_calls"), list):
        value = value["tool_calls"]
    return None if value is None else _calls_of(value, names)


def parse_tool_calls(text: str, names: Collection[str]) -> Parsed:
    """Split `text` into content and tool calls; no calls -> the text unchanged."""
    stripped = text.strip()
    if HERMES_OPEN in stripped:
        parsed = _hermes(stripped, names)
        if parsed is not None and parsed.calls:
            return parsed
    elif MISTRAL_TAG in stripped:
        calls = _mistral(stripped, names)
        before = stripped.split(MISTRAL_TAG, 1)[0].strip()
        if calls:
            return Parsed(before or None, calls)
    else:
        calls = _plain_json(stripped, names)
        if calls:
            return Parsed(None, calls)
    return Parsed(text, [])


def may_start_call(text: str) -> bool:
    """Could a reply beginning with `text` (so far) turn out to be a tool call?"""
    head = text.lstrip()
    if not head:
        return True
    return any(head.startswith(m) or m.startswith(head) for m in LEADING_MARKERS)


def split_safe(text: str) -> tuple[str, str]:
    """(text safe to show now, held tail): holds from a `<tool_call>` (or its prefix) on."""
    at = text.find(HERMES_OPEN)
    if at >= 0:
        return text[:at], text[at:]
    for k in range(min(len(HERMES_OPEN) - 1, len(text)), 0, -1):
        if HERMES_OPEN.startswith(text[-k:]):
            return text[:-k], text[-k:]
    return text, ""


class ToolStream:
    """Per-choice streaming filter: content that is safe to show now, calls at the end.

    A reply that may start with a call is held until it can no longer be one; inside plain
    text, `<tool_call>` (or a prefix of it) and everything after is held. Held text is
    parsed when the choice ends, so raw markup never reaches `content`.
    """

    def __init__(self, names: Collection[str]) -> None:
        self._names = names
        self._buf = ""
        self._mode = "undecided"  # -> "text" or "held"

    def push(self, text: str) -> str:
        self._buf += text
        if self._mode == "held":
            return ""
        if self._mode == "undecided":
            if may_start_call(self._buf):
                head = self._buf.lstrip()
                if head and any(head.startswith(m) for m in LEADING_MARKERS):
                    self._mode = "held"
                return ""
            self._mode = "text"
        safe, held = split_safe(self._buf)
        shown = safe.rstrip()  # whitespace before a call is not content: hold it too
        self._buf = safe[len(shown):] + held
        if held.startswith(HERMES_OPEN):
            self._mode = "held"
        return shown

    def finish(self) -> Parsed:
        """The choice ended: what was held, as content and calls."""
        text, self._buf = self._buf, ""
        if self._mode == "held":
            return parse_tool_calls(text, self._names)
        return Parsed(text or None, [])
