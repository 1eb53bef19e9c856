"""A Responses API request (plus a stored conversation) -> a chat turn; a reply -> history."""

from __future__ import annotations

import json
from typing import Any

from app.errors import InvalidRequest
from app.protocol.chat_job import ChatTurn
from app.protocol.openai.responses import ResponsesRequest
from app.protocol.openai.responses_input import chat_tool_choice, chat_tools, input_messages
from app.protocol.openai.responses_reply import ResponseShape
from app.services.events import Reply


def _schema(body: ResponsesRequest) -> dict[str, Any] | None:
    fmt = body.text.format if body.text is not None else None
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object" or fmt.schema_ is None:
        return {"type": "object"}
    return fmt.schema_


def conversation(body: ResponsesRequest, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The turns so far: a stored chain's history, then this request's input items."""
    return [*history, *input_messages(body.items, None)]


def turn(body: ResponsesRequest, turns: list[dict[str, Any]]) -> ChatTurn:
    """`instructions` are not carried over a chain: they lead each request's prompt."""
    if not turns:
        raise InvalidRequest("input is empty", param="input")
    messages = ([{"role": "system", "content": body.instructions}] if body.instructions
                else []) + turns
    tools = chat_tools(body.tools)
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    return ChatTurn(
        model=body.model, messages=messages, tools=tools,
        tool_choice=chat_tool_choice(body.tool_choice, tools),
        json_schema=_schema(body), schema_param="text.format",
        max_tokens=body.max_output_tokens, temperature=body.temperature, top_p=body.top_p,
        top_k=body.top_k, seed=body.seed, stop=stop,
        one_call=body.parallel_tool_calls is False)


def shape(body: ResponsesRequest, model: str) -> ResponseShape:
    text_format: dict[str, Any] = {"type": "text"}
    if body.text is not None and body.text.format is not None:
        text_format = body.text.format.model_dump(by_alias=True, exclude_none=True)
    return ResponseShape(
        model=model, instructions=body.instructions, max_output_tokens=body.max_output_tokens,
        previous_response_id=body.previous_response_id, temperature=body.temperature,
        top_p=body.top_p, tools=list(body.tools or []),
        tool_choice=body.tool_choice if body.tool_choice is not None else "auto",
        parallel_tool_calls=body.parallel_tool_calls is not False, text_format=text_format,
        store=body.store is not False, metadata=dict(body.metadata or {}),
        reasoning=({"effort": body.reasoning.effort, "summary": body.reasoning.summary}
                   if body.reasoning is not None else {"effort": None, "summary": None}))


def reply_turn(reply: Reply) -> dict[str, Any]:
    """The assistant's reply as a chat message, to continue the conversation from."""
    choice = reply.choices[0]
    message: dict[str, Any] = {"role": "assistant", "content": choice.content}
    if choice.reasoning is not None:
        message["reasoning_content"] = choice.reasoning
    if choice.tool_calls:
        message["tool_calls"] = [
            {"id": call.id, "type": "function",
             "function": {"name": call.name, "arguments": _args(call.arguments)}}
            for call in choice.tool_calls]
    return message


def _args(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text
