"""Anthropic messages, system and tools -> the engine's chat messages and tools (pure).

`tool_result` blocks of a user turn become `tool` messages (before the turn's text),
`tool_use` blocks of an assistant turn its `tool_calls`, `thinking` blocks its
`reasoning_content`. Images are refused (the test models read text only); other block
kinds are skipped.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from app.errors import InvalidRequest
from app.protocol.anthropic.messages import Message, ToolChoice

log = logging.getLogger(__name__)


def _block_text(blocks: Any, where: str) -> str:
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        raise InvalidRequest(f"{where} must be a string or a list of blocks", param=where)
    out = []
    for j, block in enumerate(blocks):
        if not isinstance(block, dict):
            raise InvalidRequest(f"{where}[{j}] must be an object", param=where)
        if block.get("type") == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{where}[{j}].text must be a string", param=where)
            out.append(text)
        elif block.get("type") == "image":
            raise InvalidRequest(f"{where}[{j}]: images are not supported by this model",
                                 param=where)
    return "".join(out)


def system_text(system: str | list[dict[str, Any]] | None) -> str:
    return "" if system is None else _block_text(system, "system")


def _user(message: Message, where: str) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"role": "user", "content": message.content}]
    out: list[dict[str, Any]] = []
    texts: list[dict[str, Any]] = []
    for j, block in enumerate(message.content):
        if block.get("type") == "tool_result":
            tool_use_id = block.get("tool_use_id")
            if not isinstance(tool_use_id, str):
                raise InvalidRequest(f"{where}.content[{j}].tool_use_id is required",
                                     param="messages")
            content = _block_text(block.get("content", ""), f"{where}.content[{j}].content")
            if block.get("is_error"):
                content = f"Error: {content}"
            out.append({"role": "tool", "tool_call_id": tool_use_id, "content": content})
        else:
            texts.append(block)
    text = _block_text(texts, f"{where}.content")
    if text or not out:
        out.append({"role": "user", "content": text})
    return out


def _assistant(message: Message, where: str) -> dict[str, Any]:
    if isinstance(message.content, str):
        return {"role": "assistant", "content": message.content}
    turn: dict[str, Any] = {"role": "assistant", "content": ""}
    for j, block in enumerate(message.content):
        kind = block.get("type")
        if kind == "text":
            turn["content"] += _block_text([block], f"{where}.content")
        elif kind == "thinking":
            turn["reasoning_content"] = str(block.get("thinking", ""))
        elif kind == "tool_use":
            name, call_id = block.get("name"), block.get("id")
            if not isinstance(name, str) or not isinstance(call_id, str):
                raise InvalidRequest(f"{where}.content[{j}]: tool_use needs id and name",
                                     param="messages")
            turn.setdefault("tool_calls", []).append({
                "id": call_id, "type": "function",
                "function": {"name": name, "arguments": block.get("input") or {}}})
    return turn


def chat_messages(messages: list[Message], system: str | list[dict[str, Any]] | None
                  ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    text = system_text(system)
    if text:
        out.append({"role": "system", "content": text})
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if message.role == "user":
            out.extend(_user(message, where))
        elif message.role == "system":
            out.append({"role": "system", "content": _block_text(message.content,
                                                                 f"{where}.content")})
        else:
            out.append(_assistant(message, where))
    return out


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Custom tools (name + input_schema) in the chat shape; Anthropic-defined ones skipped."""
    if not tools:
        return None
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools[{i}] must be an object", param="tools")
        if tool.get("type") not in (None, "custom") or "input_schema" not in tool:
            log.debug("skipping tool", extra={"type": str(tool.get("type"))})
            continue
        fn: dict[str, Any] = {"name": tool.get("name"), "parameters": tool["input_schema"]}
        if tool.get("description"):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out or None


def chat_tool_choice(choice: ToolChoice | None, tools: list[dict[str, Any]] | None) -> Any:
    if choice is None or not tools:
        return None if choice is None or choice.type in ("auto", "none") else "none"
    if choice.type == "any":
        return "required"
    if choice.type == "tool":
        if not choice.name:
            raise InvalidRequest("tool_choice.name is required for type 'tool'",
                                 param="tool_choice")
        return {"type": "function", "function": {"name": choice.name}}
    return choice.type


def input_json(arguments: str) -> dict[str, Any]:
    """A tool call's arguments (JSON text of an object) as Anthropic's `input` object."""
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
