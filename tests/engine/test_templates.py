"""Chat templates rendered in the Jinja sandbox (pure)."""

from __future__ import annotations

import pytest

from app.engine.templates import ChatTemplate, TemplateError
from tests.engine.conftest import GEMMA_TEMPLATE

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def test_chatml_with_generation_prompt() -> None:
    out = ChatTemplate(CHATML).render(MESSAGES)
    assert out == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_without_generation_prompt() -> None:
    out = ChatTemplate(CHATML).render(MESSAGES, add_generation_prompt=False)
    assert not out.endswith("<|im_start|>assistant\n")


def test_gemma_turns_and_bos() -> None:
    t = ChatTemplate(GEMMA_TEMPLATE, bos_token="<bos>", eos_token="<eos>")
    out = t.render([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])
    assert out == (
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nYo<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_raise_exception_becomes_template_error() -> None:
    t = ChatTemplate(
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}ok"
    )
    assert t.render([{"role": "user", "content": "x"}]) == "ok"
    with pytest.raises(TemplateError, match="user first"):
        t.render([{"role": "assistant", "content": "x"}])


def test_strftime_now_and_tools() -> None:
    t = ChatTemplate("{{ strftime_now('%Y') | length }}|{{ tools | tojson }}|{{ tools is none }}")
    assert t.render([], tools=[{"name": "f", "d": "é<"}]) == '4|[{"name": "f", "d": "é<"}]|False'
    assert t.render([]).endswith("|null|True")


def test_loop_controls_enabled() -> None:
    t = ChatTemplate(
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}"
        "{{ m['content'] }}{% endfor %}"
    )
    assert t.render([{"content": "a"}, {"content": "b"}]) == "a"


def test_syntax_error_is_template_error() -> None:
    with pytest.raises(TemplateError, match="does not compile"):
        ChatTemplate("{% for x in %}")


def test_runtime_error_is_template_error() -> None:
    with pytest.raises(TemplateError, match="failed"):
        ChatTemplate("{{ messages[0]['content'] + 1 }}").render([{"content": "a"}])


def test_sandbox_blocks_attribute_escape() -> None:
    t = ChatTemplate("{{ messages.__class__.__mro__ }}")
    with pytest.raises(TemplateError):
        t.render([])
