"""Anthropic Messages API request schema (`POST /v1/messages`), permissive.

`max_tokens` is required, as Anthropic requires it (a value above the model's context is
capped, not refused). Unknown fields, content block kinds this server does not use
(documents, citations, server tool results) and non-custom tools (Anthropic's server and
client tools such as web search or bash) are accepted and skipped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

StopSequence = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Message(_Open):
    role: Literal["user", "assistant", "system"]  # Claude Code sends system turns mid-list
    content: str | list[dict[str, Any]]


class Thinking(_Open):
    type: str = "disabled"  # "enabled" | "disabled" | "adaptive"
    budget_tokens: int | None = None


class ToolChoice(_Open):
    type: Literal["auto", "any", "tool", "none"] = "auto"
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class MessagesRequest(_Open):
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int = Field(ge=1)
    messages: list[Message] = Field(min_length=1, max_length=4096)
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: Annotated[list[StopSequence], Field(max_length=16)] | None = None
    temperature: float | None = Field(None, ge=0.0, le=1.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    metadata: dict[str, Any] | None = None


class CountTokensRequest(_Open):
    """`POST /v1/messages/count_tokens`: no `max_tokens`."""

    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1, max_length=4096)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
