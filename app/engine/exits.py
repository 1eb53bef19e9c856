"""Why a worker died or a load failed, in words a user can act on (pure, front side).

A client must never see the server's file layout: paths are replaced by the model id.
"""

from __future__ import annotations

import re
import signal

_PATH_RE = re.compile(r"(?:'|\")?/(?:[^\s'\":;,]+/)*[^\s'\":;,]+(?:'|\")?")

REBUILD_HINT = (
    "rebuild with `make clean-venv install` (portable CPU variants; the worker picks one this "
    "CPU runs) or choose another variant with the `cpu_variant` setting"
)

# llama.cpp log fragments -> what is wrong with the file
_LOAD_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"invalid magic|not a GGUF|failed to read magic", re.I),
     "the file is not a GGUF model"),
    (re.compile(r"data is not within the file bounds|unexpectedly reached end of file|"
                r"failed to read tensor|file is truncated|tensor .* out of bounds", re.I),
     "the file is truncated or corrupt (its tensor data is incomplete)"),
    (re.compile(r"unknown model architecture: '([^']*)'", re.I),
     "unsupported model architecture '{0}' for this llama.cpp build"),
    (re.compile(r"unsupported GGUF version|invalid version", re.I),
     "unsupported GGUF version"),
    (re.compile(r"failed to allocate|out of memory|cannot allocate|ErrorOutOfDeviceMemory", re.I),
     "out of memory while loading"),
    (re.compile(r"failed to open|No such file|Permission denied", re.I),
     "the file cannot be opened (missing or unreadable)"),
    (re.compile(r"key not found in model|missing tensor|wrong number of tensors|"
                r"wrong shape", re.I),
     "the file lacks tensors or metadata this architecture needs (incomplete or corrupt)"),
)


def scrub_paths(text: str, model_id: str) -> str:
    """Replace absolute paths in ``text`` by ``<model_id>``."""
    return _PATH_RE.sub(f"<{model_id}>", text)


def load_problem(messages: list[str]) -> str | None:
    """The first recognised cause in llama.cpp's load errors, or None."""
    for message in messages:
        for pattern, words in _LOAD_PATTERNS:
            match = pattern.search(message)
            if match:
                return words.format(*match.groups())
    return None


def explain_load_failure(model_id: str, messages: list[str]) -> str:
    """What is wrong, from llama.cpp's error lines (the scheduler prefixes the model id)."""
    cause = load_problem(messages)
    detail = scrub_paths("; ".join(messages[-3:]), model_id) if messages else ""
    if cause is None:
        return detail or "llama.cpp gave no reason"
    return f"{cause} (llama.cpp: {detail})" if detail else cause


def explain_exit(model_id: str, returncode: int | None, log_tail: str, *, loading: bool) -> str:
    """Why the worker of ``model_id`` ended, with what to do about it."""
    when = "while loading" if loading else "while serving"
    tail = scrub_paths(log_tail, model_id).strip()
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        cause = {
            "SIGILL": "the llama.cpp build uses CPU instructions this machine cannot run; "
                      + REBUILD_HINT,
            "SIGSEGV": "llama.cpp crashed (segmentation fault)",
            "SIGBUS": "the model file changed or was truncated while it was mapped",
            "SIGABRT": "llama.cpp aborted",
            "SIGKILL": "it was killed (the kernel's out-of-memory killer, or a kill -9)",
            "SIGFPE": "llama.cpp hit an arithmetic fault",
        }.get(name, "it was killed by a signal")
        text = f"the worker for {model_id} died {when} by {name}: {cause}"
    else:
        text = f"the worker for {model_id} exited {when} with code {returncode}"
    return f"{text}. Last log lines: {tail}" if tail else text
