"""OpenAI Responses API request schema (`POST /v1/responses`), permissive.

Unknown fields are accepted and ignored, as are input items and tools of kinds this
server does not run (web search, file search, computer use, MCP, custom tools...):
agents send them routinely. What matters is validated: the model, the shape of messages
and function-call items, the sampling ranges.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.protocol.common import StopString


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextFormat(_Open):
    type: Literal["text", "json_schema", "json_object"] = "text"
    name: str | None = Field(None, max_length=64)
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextConfig(_Open):
    format: TextFormat | None = None
    verbosity: str | None = None


class Reasoning(_Open):
    effort: str | None = None
    summary: str | None = None


class ResponsesRequest(_Open):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[dict[str, Any]] = Field(default_factory=list)
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)  # llama.cpp extension
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)  # llama.cpp extension
    stop: StopString | list[StopString] | None = None  # llama.cpp extension
    stream: bool | None = False
    store: bool | None = True
    previous_response_id: str | None = Field(None, max_length=256)
    metadata: dict[str, Any] | None = None
    user: str | None = None
    truncation: str | None = None
    include: list[str] | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @property
    def items(self) -> list[dict[str, Any]]:
        if isinstance(self.input, str):
            return [{"type": "message", "role": "user", "content": self.input}]
        return self.input


class InputTokensRequest(ResponsesRequest):
    """`POST /v1/responses/input_tokens`: the same fields, only the prompt is counted."""
