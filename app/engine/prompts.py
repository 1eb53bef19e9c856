"""From a request to prompt tokens: chat template, BOS handling, tokenization, checks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.engine.schema import GenerateRequest
from app.engine.templates import ChatTemplate, TemplateError
from app.engine.tool_prompt import with_tools_as_text
from app.errors import EngineCode


class RequestError(Exception):
    """A request that cannot run; becomes a Failed event with this code."""

    def __init__(self, code: EngineCode, message: str,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: Mapping[str, Any] = dict(details or {})


@dataclass
class PromptBuilder:
    """Renders and tokenizes prompts for one model."""

    tokenize: Callable[[str, bool], list[int]]  # (text, add_special) -> tokens
    add_bos: bool
    bos_text: str
    eos_text: str
    template_source: str | None
    n_ctx: int
    parallel: int
    _template: ChatTemplate | None = field(default=None, init=False)
    _template_error: str | None = field(default=None, init=False)

    def build(self, req: GenerateRequest) -> list[int]:
        """Prompt tokens of `req`, or RequestError."""
        if req.n < 1 or req.n > self.parallel:
            raise RequestError(
                EngineCode.INVALID_N,
                f"n must be between 1 and {self.parallel} for this model",
                {"n": req.n, "max_n": self.parallel},
            )
        if req.messages is not None:
            text = self.render(req)
            # a template that ends its generation prompt inside <think> (Qwen3, R1 style)
            req.thinking_opened = text.rstrip().endswith("<think>")
        elif req.prompt is not None:
            text = req.prompt
        else:
            raise RequestError(EngineCode.INVALID_REQUEST,
                               "request has neither messages nor prompt")
        add_special = self.add_bos and not (self.bos_text and text.startswith(self.bos_text))
        tokens = self.tokenize(text, add_special)
        if not tokens:
            raise RequestError(EngineCode.EMPTY_PROMPT, "the prompt is empty",
                               {"param": "prompt" if req.prompt is not None else "messages"})
        if len(tokens) >= self.n_ctx:
            raise RequestError(
                EngineCode.CONTEXT_LENGTH_EXCEEDED,
                f"the prompt has {len(tokens)} tokens; this model's context is {self.n_ctx}"
                " tokens per request, and at least one token must be left for the reply",
                {"prompt_tokens": len(tokens), "n_ctx": self.n_ctx},
            )
        return tokens

    def render(self, req: GenerateRequest) -> str:
        """The prompt text; tools go through the template, or (if it ignores them) into
        a generic system prompt with calls and results as text."""
        template = self._get_template()
        messages = req.messages or []
        gen = req.add_generation_prompt
        try:
            if not req.tools:
                return template.render(messages, add_generation_prompt=gen)
            with_tools = _try_render(template, messages, gen, req.tools)
            if with_tools is not None and with_tools != _try_render(template, messages, gen):
                return with_tools
            return template.render(with_tools_as_text(messages, req.tools),
                                   add_generation_prompt=gen)
        except TemplateError as exc:
            raise RequestError(EngineCode.TEMPLATE_ERROR, str(exc)) from exc

    def _get_template(self) -> ChatTemplate:
        if self._template is not None:
            return self._template
        if self._template_error is not None:
            raise RequestError(EngineCode.TEMPLATE_ERROR, self._template_error)
        if not self.template_source:
            raise RequestError(
                EngineCode.NO_CHAT_TEMPLATE,
                "this model has no chat template; configure one or use the completions API",
            )
        try:
            self._template = ChatTemplate(
                self.template_source, bos_token=self.bos_text, eos_token=self.eos_text
            )
        except TemplateError as exc:
            self._template_error = str(exc)
            raise RequestError(EngineCode.TEMPLATE_ERROR, str(exc)) from exc
        return self._template


def _try_render(template: ChatTemplate, messages: list[dict[str, Any]], gen: bool,
                tools: list[dict[str, Any]] | None = None) -> str | None:
    try:
        return template.render(messages, add_generation_prompt=gen, tools=tools)
    except TemplateError:
        return None
