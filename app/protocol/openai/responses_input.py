"""Responses API input items and tools -> the chat messages and tools of the engine (pure).

`message` items become chat messages (`developer` reads as `system`), consecutive
`function_call` items one assistant turn with `tool_calls`, `function_call_output` a
`tool` message, `reasoning` items the next assistant turn's `reasoning_content`. Item
and tool kinds this server does not run are skipped (and named in the log), not refused.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from app.errors import InvalidRequest

log = logging.getLogger(__name__)

_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "reasoning_text"})
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def _text(content: Any, where: str) -> str:
    """A message's content (a string or a list of parts) as one string."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of parts",
                             param=f"{where}.content")
    texts = []
    for j, part in enumerate(content):
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") in _TEXT_PARTS:
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{where}.content[{j}].text must be a string",
                                     param=f"{where}.content")
            texts.append(text)
        elif isinstance(part, dict) and part.get("type") in ("input_image", "input_file",
                                                            "input_audio"):
            raise InvalidRequest(f"{where}.content[{j}]: {part['type']} is not supported by "
                                 "this model", param=f"{where}.content")
        elif isinstance(part, dict) and part.get("type") == "refusal":
            texts.append(str(part.get("refusal", "")))
        else:
            log.debug("skipping content part", extra={"part": str(part)[:80]})
    return "".join(texts)


def _arguments(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}.arguments must be a JSON string", param=where)
    try:
        return json.loads(value) if value.strip() else {}
    except ValueError:
        return value  # the template shows it as it came


class _Builder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._reasoning: str | None = None

    def _assistant(self) -> dict[str, Any]:
        """The open assistant turn (function calls join the turn they follow)."""
        last = self.messages[-1] if self.messages else None
        if last is None or last["role"] != "assistant":
            last = {"role": "assistant", "content": ""}
            self.messages.append(last)
        if self._reasoning is not None:
            last["reasoning_content"] = self._reasoning
            self._reasoning = None
        return last

    def message(self, item: dict[str, Any], where: str) -> None:
        role = _ROLES.get(str(item.get("role")))
        if role is None:
            raise InvalidRequest(f"{where}.role must be one of {sorted(_ROLES)}",
                                 param=f"{where}.role")
        text = _text(item.get("content"), where)
        if role == "assistant":
            last = self.messages[-1] if self.messages else None
            if last is not None and last["role"] == "assistant" and not last.get("tool_calls"):
                last["content"] += text
            else:
                self.messages.append({"role": "assistant", "content": text})
            self._assistant()
        else:
            self.messages.append({"role": role, "content": text})

    def function_call(self, item: dict[str, Any], where: str) -> None:
        name, call_id = item.get("name"), item.get("call_id") or item.get("id")
        if not isinstance(name, str) or not isinstance(call_id, str):
            raise InvalidRequest(f"{where}: a function_call needs name and call_id", param=where)
        turn = self._assistant()
        turn.setdefault("tool_calls", []).append({
            "id": call_id, "type": "function",
            "function": {"name": name, "arguments": _arguments(item.get("arguments", ""),
                                                                where)}})

    def function_output(self, item: dict[str, Any], where: str) -> None:
        call_id = item.get("call_id")
        if not isinstance(call_id, str):
            raise InvalidRequest(f"{where}: a function_call_output needs call_id", param=where)
        output = item.get("output", "")
        text = output if isinstance(output, str) else _text(output, where)
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})

    def reasoning(self, item: dict[str, Any], where: str) -> None:
        parts = (item.get("content") or []) + (item.get("summary") or [])
        text = _text(parts, where)
        if text:
            self._reasoning = text


def input_messages(items: list[dict[str, Any]], instructions: str | None) -> list[dict[str, Any]]:
    """Chat messages of `instructions` plus the input items, in order."""
    builder = _Builder()
    if instructions:
        builder.messages.append({"role": "system", "content": instructions})
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise InvalidRequest(f"{where} must be an object", param="input")
        kind = item.get("type", "message")
        if kind == "message":
            builder.message(item, where)
        elif kind == "function_call":
            builder.function_call(item, where)
        elif kind == "function_call_output":
            builder.function_output(item, where)
        elif kind == "reasoning":
            builder.reasoning(item, where)
        else:
            log.debug("skipping input item", extra={"type": str(kind)})
    return builder.messages


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Function tools in the chat shape; other tool kinds are skipped."""
    if not tools:
        return None
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools[{i}] must be an object", param="tools")
        if tool.get("type") != "function":
            log.debug("skipping tool", extra={"type": str(tool.get("type"))})
            continue
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
        out.append({"type": "function", "function": fn})
    return out or None


def chat_tool_choice(choice: str | dict[str, Any] | None,
                     tools: list[dict[str, Any]] | None) -> Any:
    """`tool_choice` in the chat shape (a choice naming a skipped tool kind reads as auto)."""
    if choice is None or isinstance(choice, str):
        return choice if tools or choice in (None, "none", "auto") else "none"
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("type") == "allowed_tools":
        return choice.get("mode", "auto")
    return "auto"
