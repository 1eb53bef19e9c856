"""`tools` / `tool_choice` of a chat request -> what the engine renders and enforces (pure).

`none`: tools are not offered. `auto`: offered through the template, the reply is parsed.
`required` / a named function: the reply is forced by a grammar to one call object
`{"name": ..., "arguments": {...}}` whose arguments match the tool's JSON schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from app.errors import InvalidRequest
from app.services.json_schema_check import checked_schema

MAX_TOOLS = 128
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class ToolPlan:
    tools: list[dict[str, Any]] | None  # for the chat template (None: not offered)
    names: list[str] | None  # names to parse calls of (None: no parsing)
    json_schema: dict[str, Any] | None  # grammar forcing a call (required / named)


def _function(tool: Any, i: int) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise InvalidRequest(f"tools[{i}] must be {{'type': 'function', 'function': {{...}}}}",
                             param="tools")
    fn = tool.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise InvalidRequest(f"tools[{i}].function.name is required", param="tools")
    if not _NAME_RE.match(fn["name"]):
        raise InvalidRequest(f"tools[{i}].function.name must match {_NAME_RE.pattern}",
                             param="tools")
    params = fn.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise InvalidRequest(f"tools[{i}].function.parameters must be an object",
                             param="tools")
    return fn


def _chosen(tool_choice: Any, names: list[str]) -> str | None:
    """'none' | 'auto' | 'required' -> itself; a named function -> its name."""
    if tool_choice in ("none", "auto", "required"):
        return str(tool_choice)
    if isinstance(tool_choice, dict):
        fn = tool_choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else None
        if tool_choice.get("type") == "function" and isinstance(name, str):
            if name not in names:
                raise InvalidRequest(f"tool_choice names '{name}', which is not in tools",
                                     param="tool_choice")
            return "=" + name
    raise InvalidRequest("tool_choice must be 'none', 'auto', 'required' or "
                         "{'type': 'function', 'function': {'name': ...}}", param="tool_choice")


def _call_schema(functions: list[dict[str, Any]]) -> dict[str, Any]:
    """One call object of any of `functions`; their $defs hoisted to the root."""
    defs: dict[str, Any] = {}
    options = []
    for fn in functions:
        params = dict(checked_schema(fn.get("parameters") or _NO_PARAMETERS, "tools"))
        for key in ("$defs", "definitions"):
            for name, sub in (params.pop(key, None) or {}).items():
                if name in defs and defs[name] != sub:
                    raise InvalidRequest(f"tools define '{name}' differently in $defs",
                                         param="tools")
                defs[name] = sub
        text = json.dumps(params).replace('"#/definitions/', '"#/$defs/')
        options.append({"type": "object",
                        "properties": {"name": {"const": fn["name"]},
                                       "arguments": json.loads(text)},
                        "required": ["name", "arguments"], "additionalProperties": False})
    schema: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
    if defs:
        schema = {**schema, "$defs": defs}
    return schema


def plan_tools(tools: list[dict[str, Any]] | None, tool_choice: Any) -> ToolPlan:
    if not tools:
        if tool_choice not in (None, "none", "auto"):
            raise InvalidRequest("tool_choice needs tools", param="tool_choice")
        return ToolPlan(None, None, None)
    if len(tools) > MAX_TOOLS:
        raise InvalidRequest(f"at most {MAX_TOOLS} tools are supported", param="tools")
    functions = [_function(tool, i) for i, tool in enumerate(tools)]
    names = [fn["name"] for fn in functions]
    if len(set(names)) != len(names):
        raise InvalidRequest("tool names must be unique", param="tools")
    choice = _chosen("auto" if tool_choice is None else tool_choice, names)
    if choice == "none":
        return ToolPlan(None, None, None)
    offered = [{"type": "function", "function": fn} for fn in functions]
    if choice == "auto":
        return ToolPlan(offered, names, None)
    wanted = str(choice)[1:]
    forced = functions if choice == "required" else [
        fn for fn in functions if fn["name"] == wanted]
    return ToolPlan(offered, names, _call_schema(forced))
