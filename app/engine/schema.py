"""Public value types of the engine: worker spec, load report, requests and events.

Shared by the front process (client.py) and the worker process; no llama_cpp here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import EngineCode


@dataclass(frozen=True)
class Speculation:
    """Speculative decoding of a model (its default) or of one request.

    `type`: "ngram" (prompt lookup), "draft" (the model's draft model) or "off"; `max`:
    the most draft tokens verified per step and sequence; `budget`: "auto" drafts only
    where the measured cost of a wider decode step says they pay (spec_policy.py),
    "always" drafts whenever there is a proposal (llama-server's behaviour).
    """

    type: str = "off"
    max: int = 8
    budget: str = "auto"


@dataclass(frozen=True)
class WorkerSpec:
    """How to start one worker: the model file and the llama.cpp context settings."""

    model_id: str
    model_path: Path
    n_ctx: int  # context per slot (per request)
    parallel: int = 4  # sequence slots
    n_batch: int = 512
    n_threads: int | None = None  # None -> os.cpu_count()
    n_gpu_layers: int = 0
    use_mmap: bool = True
    flash_attn: bool | None = None  # None -> llama.cpp auto
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    chat_template: str | None = None  # override of the GGUF template
    lib_path: str | None = None  # LLAMA_CPP_LIB_PATH for this worker
    cpu_variant: str | None = None  # llama.cpp CPU backend variant; None -> the worker chooses
    env: Mapping[str, str] = field(default_factory=dict)  # extra env for the worker
    # RPC nodes (other boxes) holding part of the model: addresses, llama.cpp's tensor_split
    # per device in device order, and that order (app/scheduler/split.py computes all three)
    rpc_nodes: tuple[str, ...] = ()
    tensor_split: tuple[float, ...] = ()
    nodes_first: bool = False
    rpc_step_timeout: float = 120.0  # a decode step waiting on the nodes longer: worker exits
    # embedding mode: pooled vectors instead of generation; pooling None -> the model's own
    embedding: bool = False
    pooling: str | None = None  # "mean" | "cls" | "last" | "rank"
    speculative: Speculation = Speculation()  # the default of requests that do not say
    draft_path: Path | None = None  # draft model (same vocabulary) for type "draft"


@dataclass(frozen=True)
class LoadReport:
    """What the worker measured after loading the model and creating the context."""

    pid: int
    load_seconds: float
    n_ctx: int
    parallel: int
    n_ctx_train: int
    n_vocab: int
    model_bytes: int
    kv_bytes: int
    compute_bytes: int
    rss_bytes: int
    has_chat_template: bool
    backend_devices: tuple[str, ...]
    node_bytes: tuple[tuple[str, int], ...] = ()  # buffers on each RPC node (not in the above)
    cpu_variant: str | None = None  # the llama.cpp CPU backend module in use
    n_embd: int = 0  # length of an embedding vector (embedding mode)
    pooling: str = ""  # the pooling in effect (embedding mode)


@dataclass(frozen=True)
class WorkerStats:
    """A snapshot of the worker's slots and queue."""

    slots_total: int
    slots_busy: int
    requests_active: int
    requests_queued: int
    rss_bytes: int


@dataclass
class GenerateRequest:
    """One chat or completion request; `messages` (chat) or `prompt` (raw text) is set."""

    request_id: str
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    add_generation_prompt: bool = True
    tools: list[dict[str, Any]] | None = None
    max_tokens: int | None = None
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = disabled
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repeat_penalty: float = 1.0
    seed: int | None = None
    logit_bias: dict[int, float] = field(default_factory=dict)
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False
    thinking_opened: bool = False  # set by the worker when the rendered prompt opens <think>
    # output constrained to this JSON schema by a grammar ({"type": "object"}: any object)
    json_schema: dict[str, Any] | None = None
    json_schema_param: str = "response_format"  # request field named when it is refused
    logprobs: int | None = None  # None: off; k: the sampled token's logprob and the top k
    speculative: Speculation | None = None  # None: the model's default


@dataclass(frozen=True)
class TokenLogprob:
    """Log-probability of one generated token under the model, and the top alternatives."""

    token: bytes
    logprob: float
    top: tuple[tuple[bytes, float], ...] = ()


@dataclass(frozen=True)
class Accepted:
    """Prompt tokenized, fits, slot(s) assigned; prefill starts."""

    prompt_tokens: int
    cached_tokens: int
    thinking_opened: bool = False  # the prompt ends inside <think>: the reply starts thinking


@dataclass(frozen=True)
class TextDelta:
    """Choice `index` produced `text` from `n_tokens` new tokens."""

    index: int
    text: str
    n_tokens: int
    logprobs: tuple[TokenLogprob, ...] = ()  # of the tokens behind `text` (if requested)


@dataclass(frozen=True)
class ChoiceEnd:
    """Choice `index` ended ("stop" or "length")."""

    index: int
    finish_reason: str
    completion_tokens: int
    stop_sequence: str | None = None  # the stop string that ended it, if one did


@dataclass(frozen=True)
class Finished:
    """Every choice ended; usage and timings of the request."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    queue_ms: float
    prompt_ms: float
    decode_ms: float
    spec_proposed: int = 0  # draft tokens verified (speculative decoding)
    spec_accepted: int = 0  # of which the target accepted


@dataclass(frozen=True)
class Failed:
    """The request failed; nothing follows."""

    code: EngineCode
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class EmbedRequest:
    """Inputs (text or token ids) to embed in one go; vectors come back in input order."""

    request_id: str
    inputs: list[str | list[int]]
    truncate: bool = False  # cut inputs longer than the context instead of refusing them
    normalize: bool = True  # L2-normalise each pooled vector
    add_special: bool = True  # CLS/SEP (or BOS) around text inputs, as the model defines


@dataclass(frozen=True)
class Embedded:
    """The vectors of an EmbedRequest: float32 little-endian bytes per input, in order."""

    vectors: tuple[bytes, ...]
    prompt_tokens: int
    truncated: int = 0  # inputs that were cut to the context


Event = Accepted | TextDelta | ChoiceEnd | Finished | Failed | Embedded


class EngineLoadError(Exception):
    """The worker could not load the model; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
