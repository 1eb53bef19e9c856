"""Prompt building: template, BOS handling, limits (pure, with a fake tokenizer)."""

from __future__ import annotations

import pytest

from app.engine.prompts import PromptBuilder, RequestError
from app.engine.schema import GenerateRequest
from tests.engine.conftest import GEMMA_TEMPLATE


def fake_tokenize(text: str, add_special: bool) -> list[int]:
    """One token per character, BOS (id 2) in front when add_special."""
    return ([2] if add_special else []) + [ord(c) for c in text]


def builder(template: str | None = GEMMA_TEMPLATE, n_ctx: int = 200) -> PromptBuilder:
    return PromptBuilder(
        tokenize=fake_tokenize,
        add_bos=True,
        bos_text="<bos>",
        eos_text="<eos>",
        template_source=template,
        n_ctx=n_ctx,
        parallel=4,
    )


def chat(content: str) -> GenerateRequest:
    return GenerateRequest("r", messages=[{"role": "user", "content": content}], n=1)


def test_rendered_bos_is_not_doubled() -> None:
    tokens = builder().build(chat("hi"))
    assert tokens[0] != 2  # the template wrote "<bos>" as text: no extra BOS id
    assert "".join(map(chr, tokens)).startswith("<bos><start_of_turn>user\nhi")


def test_raw_prompt_gets_bos() -> None:
    tokens = builder().build(GenerateRequest("r", prompt="abc"))
    assert tokens == [2, ord("a"), ord("b"), ord("c")]


def test_no_template() -> None:
    with pytest.raises(RequestError) as err:
        builder(template=None).build(chat("hi"))
    assert err.value.code == "no_chat_template"


def test_bad_template() -> None:
    with pytest.raises(RequestError) as err:
        builder(template="{% if %}").build(chat("hi"))
    assert err.value.code == "template_error"


def test_context_length_exceeded_has_counts() -> None:
    with pytest.raises(RequestError) as err:
        builder(n_ctx=10).build(GenerateRequest("r", prompt="x" * 20))
    assert err.value.code == "context_length_exceeded"
    assert err.value.details == {"prompt_tokens": 21, "n_ctx": 10}


@pytest.mark.parametrize("n", [0, 5])
def test_invalid_n(n: int) -> None:
    with pytest.raises(RequestError) as err:
        builder().build(GenerateRequest("r", prompt="x", n=n))
    assert err.value.code == "invalid_n"


def test_neither_prompt_nor_messages() -> None:
    with pytest.raises(RequestError) as err:
        builder().build(GenerateRequest("r"))
    assert err.value.code == "invalid_request"


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
TOOL_AWARE = (
    "{% if tools %}TOOLS:{{ tools | map(attribute='function.name') | join(',') }}\n{% endif %}"
    "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
)


def _text(tokens: list[int]) -> str:
    return "".join(map(chr, tokens[1:] if tokens[0] == 2 else tokens))


def test_tools_go_through_a_template_that_knows_them() -> None:
    req = chat("hi")
    req.tools = TOOLS
    assert _text(builder(TOOL_AWARE).build(req)) == "TOOLS:get_weather\nuser: hi\n"


def test_template_ignoring_tools_gets_a_system_prompt() -> None:
    req = GenerateRequest("r", n=1, tools=TOOLS, messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": "sunny"}])
    plain = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    text = _text(builder(plain, n_ctx=4000).build(req))
    assert text.startswith("system: You can call the following tools")
    assert '"name": "get_weather"' in text
    assert 'assistant: <tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}' in text
    assert "user: <tool_response>\nsunny\n</tool_response>" in text


def test_prompt_that_opens_thinking_is_flagged() -> None:
    opens = builder("{% for m in messages %}{{ m['content'] }}{% endfor %}<think>\n")
    req = chat("hi")
    opens.build(req)
    assert req.thinking_opened
    plain = chat("hi")
    builder().build(plain)
    assert not plain.thinking_opened
