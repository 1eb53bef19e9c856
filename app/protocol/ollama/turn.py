"""Ollama `/api/chat` and `/api/generate` requests -> chat turns (pure).

`options` map to sampling (`num_predict` to the token limit, -1/-2 meaning "up to the
context"); `format` is "json" (any object) or a JSON schema; `think: false` drops the
reasoning. Tool calls in the history get ids (Ollama's have none) so templates can pair
them with the `tool` messages that follow.
"""

from __future__ import annotations

from typing import Any

from app.errors import InvalidRequest
from app.protocol.chat_job import ChatTurn
from app.protocol.ollama.schemas import ChatRequest, GenerateRequest, Options


def _schema(fmt: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if fmt is None or fmt == "":
        return None
    if fmt == "json":
        return {"type": "object"}
    if isinstance(fmt, dict):
        return fmt
    raise InvalidRequest("format must be \"json\" or a JSON schema", param="format")


def _apply(turn: ChatTurn, options: Options | None) -> ChatTurn:
    if options is None:
        return turn
    turn.max_tokens = options.max_tokens
    turn.temperature, turn.top_p, turn.top_k = options.temperature, options.top_p, options.top_k
    turn.min_p, turn.seed = options.min_p, options.seed
    turn.repeat_penalty = options.repeat_penalty
    turn.presence_penalty, turn.frequency_penalty = (options.presence_penalty,
                                                     options.frequency_penalty)
    turn.stop = list(options.stop or [])
    return turn


def chat_messages(body: ChatRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    pending: list[str] = []  # ids of calls not answered yet, oldest first
    counter = 0
    for i, message in enumerate(body.messages):
        if message.images:
            raise InvalidRequest(f"messages[{i}].images: images are not supported by this "
                                 "model", param="messages")
        turn: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.thinking:
            turn["reasoning_content"] = message.thinking
        if message.tool_calls:
            calls = []
            for call in message.tool_calls:
                counter += 1
                call_id = f"call_{counter}"
                pending.append(call_id)
                calls.append({"id": call_id, "type": "function",
                              "function": {"name": call.function.name,
                                           "arguments": call.function.arguments}})
            turn["tool_calls"] = calls
        if message.role == "tool":
            if pending:
                turn["tool_call_id"] = pending.pop(0)
            if message.tool_name:
                turn["name"] = message.tool_name
        out.append(turn)
    return out


def chat_turn(body: ChatRequest, model: str) -> ChatTurn:
    turn = ChatTurn(model=model, messages=chat_messages(body), tools=body.tools or None,
                    json_schema=_schema(body.format), schema_param="format",
                    include_reasoning=body.think is not False)
    return _apply(turn, body.options)


def generate_turn(body: GenerateRequest, model: str) -> ChatTurn:
    if body.suffix:
        raise InvalidRequest("suffix (fill-in-the-middle) is not supported", param="suffix")
    if body.images:
        raise InvalidRequest("images are not supported by this model", param="images")
    if body.raw:
        turn = ChatTurn(model=model, messages=[], raw_prompt=body.prompt,
                        json_schema=_schema(body.format), schema_param="format")
        return _apply(turn, body.options)
    messages: list[dict[str, Any]] = []
    if body.system:
        messages.append({"role": "system", "content": body.system})
    messages.append({"role": "user", "content": body.prompt})
    turn = ChatTurn(model=model, messages=messages, json_schema=_schema(body.format),
                    schema_param="format", include_reasoning=body.think is not False)
    return _apply(turn, body.options)
