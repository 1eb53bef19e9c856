"""Worker deaths and load failures explained in words, without the server's paths."""

from __future__ import annotations

import signal

import pytest

from app.engine.exits import explain_exit, explain_load_failure, scrub_paths


def test_sigill_says_what_to_do() -> None:
    text = explain_exit("smollm2", -signal.SIGILL, "", loading=True)
    assert "SIGILL" in text
    assert "CPU instructions this machine cannot run" in text
    assert "rebuild" in text
    assert "while loading" in text


@pytest.mark.parametrize(("sig", "words"), [
    (signal.SIGSEGV, "segmentation fault"), (signal.SIGKILL, "out-of-memory"),
    (signal.SIGBUS, "truncated"), (signal.SIGABRT, "aborted")])
def test_signals_are_named(sig: int, words: str) -> None:
    text = explain_exit("m", -sig, "", loading=False)
    assert signal.Signals(sig).name in text
    assert words in text
    assert "while serving" in text


def test_exit_code_and_log_tail_without_paths() -> None:
    text = explain_exit("m", 1, "error loading /srv/models/secret/m.gguf", loading=True)
    assert "code 1" in text
    assert "/srv" not in text
    assert "<m>" in text


@pytest.mark.parametrize(("log", "cause"), [
    (["gguf_init_from_file_impl: invalid magic characters: 'abcd', expected 'GGUF'"],
     "the file is not a GGUF model"),
    (["llama_model_load: error loading model: tensor 'blk.0.attn_q.weight' data is not within "
      "the file bounds, model is corrupted or incomplete"], "the file is truncated"),
    (["llama_model_load: error loading model: error loading model architecture: unknown model "
      "architecture: 'qwen9'"], "unsupported model architecture 'qwen9'"),
    (["ggml_backend_cpu_buffer_type_alloc_buffer: failed to allocate buffer of size 9999"],
     "out of memory"),
])
def test_load_failures_are_classified(log: list[str], cause: str) -> None:
    text = explain_load_failure("mymodel", [*log, "llama.cpp could not load the model file"])
    assert text.startswith(cause)


def test_unknown_load_failure_keeps_llama_words_but_no_path() -> None:
    text = explain_load_failure("m", ["something odd in '/home/u/models/m.gguf'"])
    assert "something odd" in text
    assert "/home" not in text


def test_scrub_paths() -> None:
    assert scrub_paths("failed to open '/a/b/c.gguf': No such file", "x") == \
        "failed to open <x>: No such file"
    assert scrub_paths("no paths here", "x") == "no paths here"
