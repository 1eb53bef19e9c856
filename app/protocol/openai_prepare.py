"""OpenAI chat/completions request -> a generation job and the renderer of its reply.

Everything that can be refused without running the model is refused here, before the
first byte of a response.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from app.engine.client import GenerateRequest, Speculation
from app.errors import InvalidRequest
from app.protocol.chat import ChatCompletionRequest
from app.protocol.common import SamplingRequest
from app.protocol.completions import CompletionRequest
from app.protocol.openai_reply import ChatRenderer, CompletionRenderer, OpenAIRenderer
from app.services.generation import GenerationJob, GenerationService
from app.services.json_schema_check import checked_schema
from app.services.reply import ReplyOptions
from app.services.tools import plan_tools

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """An OpenAI request, ready: the job for the generation service and its renderer."""

    job: GenerationJob
    renderer: OpenAIRenderer
    stream: bool


def _unsupported(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"{what} is not supported by this server yet", param=param)


def sampling_request(body: SamplingRequest, max_tokens: int | None) -> GenerateRequest:
    """The engine request of the OpenAI sampling fields (messages/prompt set by the caller)."""
    if body.extra_fields:
        log.debug("ignoring unsupported fields", extra={"fields": body.extra_fields})
    return GenerateRequest(
        request_id=uuid.uuid4().hex,
        max_tokens=max_tokens,
        n=body.n,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        min_p=body.min_p,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        repeat_penalty=body.repeat_penalty,
        seed=None if body.seed is None else body.seed % (2**32),
        logit_bias={int(key): value for key, value in (body.logit_bias or {}).items()},
        stop=body.stop_list,
        ignore_eos=body.ignore_eos,
        # max 0: the model's own (the generation service checks it against the model)
        speculative=None if body.speculative is None else Speculation(
            body.speculative.type, body.speculative.max or 0, body.speculative.budget or ""),
    )


def _response_schema(body: ChatCompletionRequest) -> dict[str, Any] | None:
    """The JSON schema `response_format` asks for, checked; None for plain text."""
    fmt = body.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "object"}
    assert fmt.json_schema is not None  # the protocol model requires it
    schema = fmt.json_schema.schema_
    if schema is None:
        return {"type": "object"}
    return checked_schema(schema, "response_format")


def prepare_chat(service: GenerationService, body: ChatCompletionRequest) -> Prepared:
    entry = service.model(body.model)
    if body.top_logprobs and not body.logprobs:
        raise InvalidRequest("top_logprobs needs logprobs: true", param="top_logprobs")
    if not entry.has_chat_template:
        raise InvalidRequest(
            f"model '{entry.id}' has no chat template: set chat_template in models.toml "
            "or use /v1/completions", param="model")
    plan = plan_tools(body.tools, body.tool_choice)
    request = sampling_request(body, body.token_limit)
    request.messages = [message.for_template() for message in body.messages]
    request.add_generation_prompt = body.add_generation_prompt
    request.tools = plan.tools
    request.json_schema = _response_schema(body)
    if plan.json_schema is not None:
        if request.json_schema is not None:
            raise InvalidRequest("response_format cannot be combined with a forced tool_choice",
                                 param="response_format")
        request.json_schema, request.json_schema_param = plan.json_schema, "tools"
    if body.logprobs:
        request.logprobs = body.top_logprobs or 0
    options = ReplyOptions(n=body.n, reasoning=True, include_reasoning=body.include_reasoning,
                           tool_names=tuple(plan.names) if plan.names is not None else None,
                           one_call=body.parallel_tool_calls is False)
    renderer = ChatRenderer(entry.id, body.n, body.include_usage, logprobs=body.logprobs)
    return Prepared(service.job(entry, request, options), renderer, body.stream)


def prepare_completion(service: GenerationService, body: CompletionRequest) -> Prepared:
    entry = service.model(body.model)
    if body.suffix:
        raise _unsupported("suffix", "suffix (fill-in-the-middle)")
    if body.logprobs is not None and body.echo:
        raise _unsupported("echo", "echo with logprobs (prompt logprobs)")
    if body.best_of is not None and body.best_of != body.n:
        raise _unsupported("best_of", "best_of other than n")
    request = sampling_request(body, body.max_tokens)
    request.prompt = body.prompt_text
    request.logprobs = body.logprobs
    echo = body.prompt_text if body.echo else ""
    renderer = CompletionRenderer(entry.id, body.n, body.include_usage, echo=echo,
                                  logprobs=body.logprobs is not None)
    return Prepared(service.job(entry, request, ReplyOptions(n=body.n)), renderer, body.stream)
