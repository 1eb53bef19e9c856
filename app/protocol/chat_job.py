"""A chat turn in any protocol's terms -> the generation job every chat endpoint runs.

The Responses, Messages and Ollama adapters translate their requests into a `ChatTurn`
(chat messages, function tools in the chat shape, a JSON schema, sampling); this module
turns it into the engine request exactly as `/v1/chat/completions` does: the same tool
plan (templates, forced calls by grammar), the same schema checks, the same reply reading
(reasoning split, tool-call parsing).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from app.engine.client import GenerateRequest
from app.errors import InvalidRequest
from app.services.generation import GenerationJob, GenerationService
from app.services.json_schema_check import checked_schema
from app.services.reply import ReplyOptions
from app.services.tools import plan_tools


@dataclass
class ChatTurn:
    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None  # chat shape: {"type": "function", "function"}
    tool_choice: Any = None
    json_schema: dict[str, Any] | None = None  # unchecked; None: free text
    schema_param: str = "response_format"
    max_tokens: int | None = None  # None: up to the context
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    repeat_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    one_call: bool = False  # parallel tool calls off
    include_reasoning: bool = True
    raw_prompt: str | None = None  # set: this text as is, no template (messages unused)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def chat_job(service: GenerationService, turn: ChatTurn) -> GenerationJob:
    """The job of `turn`; raises the domain error of anything refused before running."""
    entry = service.model(turn.model)
    if entry.embedding:
        raise InvalidRequest(f"model '{entry.id}' is an embedding model: it does not chat",
                             param="model")
    if turn.raw_prompt is None and not entry.has_chat_template:
        raise InvalidRequest(
            f"model '{entry.id}' has no chat template: set chat_template in models.toml",
            param="model")
    plan = plan_tools(turn.tools, turn.tool_choice)
    request = GenerateRequest(
        request_id=uuid.uuid4().hex,
        messages=turn.messages if turn.raw_prompt is None else None,
        prompt=turn.raw_prompt,
        tools=plan.tools,
        max_tokens=turn.max_tokens,
        temperature=_or(turn.temperature, 1.0),
        top_p=_or(turn.top_p, 1.0),
        top_k=turn.top_k or 0,
        min_p=_or(turn.min_p, 0.0),
        presence_penalty=_or(turn.presence_penalty, 0.0),
        frequency_penalty=_or(turn.frequency_penalty, 0.0),
        repeat_penalty=_or(turn.repeat_penalty, 1.0),
        seed=None if turn.seed is None else turn.seed % (2**32),
        stop=list(turn.stop),
    )
    if turn.json_schema is not None:
        request.json_schema = checked_schema(turn.json_schema, turn.schema_param)
        request.json_schema_param = turn.schema_param
    if plan.json_schema is not None:
        if request.json_schema is not None:
            raise InvalidRequest("a JSON output format cannot be combined with a forced tool "
                                 "choice", param=turn.schema_param)
        request.json_schema, request.json_schema_param = plan.json_schema, "tools"
    options = ReplyOptions(n=1, reasoning=turn.raw_prompt is None,
                           include_reasoning=turn.include_reasoning,
                           tool_names=tuple(plan.names) if plan.names is not None else None,
                           one_call=turn.one_call)
    return service.job(entry, request, options)
