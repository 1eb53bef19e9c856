"""Tools for chat templates that ignore them (pure): a generic system prompt, calls as text.

Used when rendering with and without `tools` gives the same text. The model is told to
answer with Hermes-style `<tool_call>{json}</tool_call>` blocks, which the front parses;
earlier calls and tool results in the history are rendered as text in the same format.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

_INTRO = (
    "You can call the following tools (functions). Their signatures, as JSON schema, are "
    "inside <tools></tools>:\n<tools>\n{tools}\n</tools>\n"
    "To call a tool, reply with nothing but one <tool_call></tool_call> block per call, "
    "each holding a JSON object with the function name and its arguments:\n"
    '<tool_call>\n{{"name": "<function-name>", "arguments": {{<arguments>}}}}\n</tool_call>\n'
    "Results come back inside <tool_response></tool_response>. If no tool is needed, "
    "answer normally."
)


def tool_system_prompt(tools: Sequence[dict[str, Any]]) -> str:
    lines = []
    for tool in tools:
        fn = tool.get("function", tool)
        lines.append(json.dumps({"name": fn.get("name"), "description": fn.get("description", ""),
                                 "parameters": fn.get("parameters", {})}, ensure_ascii=False))
    return _INTRO.format(tools="\n".join(lines))


def _call_text(call: dict[str, Any]) -> str:
    fn = call.get("function", call)
    args = fn.get("arguments", {})
    if isinstance(args, str):
        with contextlib.suppress(ValueError):
            args = json.loads(args)
    body = json.dumps({"name": fn.get("name"), "arguments": args}, ensure_ascii=False)
    return f"<tool_call>\n{body}\n</tool_call>"


def _as_text(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    content = message.get("content") or ""
    if role == "assistant" and message.get("tool_calls"):
        calls = "\n".join(_call_text(c) for c in message["tool_calls"])
        return {"role": "assistant", "content": f"{content}\n{calls}".strip()}
    if role == "tool":
        return {"role": "user", "content": f"<tool_response>\n{content}\n</tool_response>"}
    return message


def with_tools_as_text(
    messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """`messages` with the tools described in the system message and calls/results as text."""
    prompt = tool_system_prompt(tools)
    out = [_as_text(m) for m in messages]
    if out and out[0].get("role") in ("system", "developer"):
        first = out[0]
        out[0] = {**first, "role": "system", "content": f"{first.get('content') or ''}\n\n{prompt}"}
    else:
        out.insert(0, {"role": "system", "content": prompt})
    # consecutive tool results became user turns: merge them so roles keep alternating
    merged: list[dict[str, Any]] = []
    for message in out:
        if (merged and message["role"] == "user" and merged[-1]["role"] == "user"
                and str(message.get("content", "")).startswith("<tool_response>")):
            merged[-1] = {**merged[-1], "content": f"{merged[-1]['content']}\n{message['content']}"}
        else:
            merged.append(message)
    return merged
