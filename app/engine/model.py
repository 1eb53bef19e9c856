"""The llama.cpp model and context of a worker, through llama-cpp-python's low-level API.

Worker-side only. Everything untyped from `llama_cpp` stays behind the typed methods here
(and in sampling.py / batch.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from collections.abc import Callable
from typing import Any

import llama_cpp.llama_cpp as lc

from app.engine import rpc
from app.engine.backends import register_backends
from app.engine.memory import LlamaLog
from app.engine.schema import WorkerSpec
from app.hardware.ggml_backends import BackendLoadError

logger = logging.getLogger(__name__)

CACHE_TYPES: dict[str, int] = {
    "f32": 0,
    "f16": 1,
    "q4_0": 2,
    "q4_1": 3,
    "q5_0": 6,
    "q5_1": 7,
    "q8_0": 8,
    "iq4_nl": 20,
    "bf16": 30,
}


POOLING: dict[str, int] = {
    "none": 0,
    "mean": 1,
    "cls": 2,
    "last": 3,
    "rank": 4,
}


class ModelLoadError(Exception):
    """llama.cpp could not load the model or create the context."""


def install_log(log: LlamaLog) -> Callable[..., Any]:
    """Route llama.cpp/ggml logging into `log`; keep the returned callback alive."""

    @lc.llama_log_callback  # type: ignore[untyped-decorator]
    def _callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        log.feed(int(level), text.decode("utf-8", errors="replace"))

    lc.llama_log_set(_callback, ctypes.c_void_p(0))
    return _callback


def uninstall_log() -> None:
    """Back to llama.cpp's default logging (before the Python callback is freed)."""
    lc.llama_log_set(lc.llama_log_callback(0), ctypes.c_void_p(0))  # a NULL callback


class LlamaModel:
    """Loaded model + one context with `parallel` sequences, one KV stream each."""

    def __init__(self, spec: WorkerSpec, on_progress: Callable[[float], None]) -> None:
        try:
            self.backends = register_backends(spec.cpu_variant)
        except (BackendLoadError, OSError) as exc:
            raise ModelLoadError(f"cannot load llama.cpp's backends: {exc}") from exc
        if not os.access(spec.model_path, os.R_OK):
            raise ModelLoadError("failed to open the model file (missing or unreadable)")
        lc.llama_backend_init()
        mparams = lc.llama_model_default_params()
        mparams.n_gpu_layers = spec.n_gpu_layers
        self._keep: list[Any] = []  # ctypes arrays the model params point to
        self._watchdog = (rpc.StepWatchdog(spec.rpc_nodes, spec.rpc_step_timeout)
                          if spec.rpc_nodes else None)
        if spec.rpc_nodes:
            self._use_nodes(spec, mparams)
        mparams.load_mode = lc.LLAMA_LOAD_MODE_MMAP if spec.use_mmap else lc.LLAMA_LOAD_MODE_NONE

        @lc.llama_progress_callback  # type: ignore[untyped-decorator]
        def _progress(value: float, _user: ctypes.c_void_p) -> bool:
            on_progress(float(value))
            return True

        mparams.progress_callback = _progress
        self.model: Any = lc.llama_model_load_from_file(str(spec.model_path).encode(), mparams)
        if not self.model:
            raise ModelLoadError("llama.cpp could not load the model file")
        self.ctx: Any = None
        try:
            self._init_context(spec)
        except BaseException:
            self.close()
            raise
        if spec.rpc_nodes:
            logger.info("keepalive on %d node connection(s)", rpc.tighten_keepalive(spec.rpc_nodes))
        self.vocab: Any = lc.llama_model_get_vocab(self.model)
        self.n_vocab = int(lc.llama_vocab_n_tokens(self.vocab))
        self.n_ctx_train = int(lc.llama_model_n_ctx_train(self.model))
        self.n_swa = int(lc.llama_model_n_swa(self.model))
        self.model_size = int(lc.llama_model_size(self.model))
        self.add_bos = bool(lc.llama_vocab_get_add_bos(self.vocab))
        self.bos_text = self._special_text(int(lc.llama_vocab_bos(self.vocab)))
        self.eos_text = self._special_text(int(lc.llama_vocab_eos(self.vocab)))
        raw = lc.llama_model_chat_template(self.model, None)
        self.chat_template: str | None = raw.decode("utf-8", errors="replace") if raw else None
        self.n_embd = int(lc.llama_model_n_embd(self.model))
        self.n_cls_out = int(lc.llama_model_n_cls_out(self.model))
        self.pooling = int(lc.llama_pooling_type(self.ctx))
        self.mem: Any = lc.llama_get_memory(self.ctx)
        # recurrent state cannot drop its last positions: no speculation there
        self.can_rollback = not (
            lc.llama_model_is_recurrent(self.model) or lc.llama_model_is_hybrid(self.model)
        )
        self.eog_tokens = self._eog_tokens()
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)

    def _use_nodes(self, spec: WorkerSpec, mparams: Any) -> None:
        """Devices = the nodes' (then this box's offload device): llama.cpp's own order."""
        try:
            ggml = rpc.Ggml(rpc.libggml())
            per_node = rpc.connect_nodes(ggml, spec.rpc_nodes)
        except rpc.RpcError as exc:
            raise ModelLoadError(str(exc)) from exc
        shares = list(spec.tensor_split)
        groups = [list(devs) for devs in per_node]
        if spec.nodes_first:
            local = rpc.local_offload_devices(ggml)
            if not local:
                raise ModelLoadError("no local GPU device for this box's share of the layers")
            groups.append(local)
        if len(shares) != len(groups):
            raise ModelLoadError(f"tensor_split has {len(shares)} shares for {len(groups)} places")
        handles: list[int] = []
        split: list[float] = []
        for share, devs in zip(shares, groups, strict=True):
            handles += [d.handle for d in devs]
            split += [share / len(devs)] * len(devs)  # keeps every place's layer boundaries
        if len(handles) > int(lc.llama_max_devices()):
            raise ModelLoadError(f"{len(handles)} devices exceed llama.cpp's maximum")
        devices = (ctypes.c_void_p * (len(handles) + 1))(*handles, None)
        tensor_split = (ctypes.c_float * int(lc.llama_max_devices()))(*split)
        self._keep += [devices, tensor_split]
        mparams.devices = ctypes.cast(devices, ctypes.c_void_p)
        mparams.tensor_split = tensor_split
        logger.info("split over %s: tensor_split %s, n_gpu_layers %d",
                    ", ".join(d.name + "=" + d.description for g in groups for d in g),
                    split, spec.n_gpu_layers)

    def _init_context(self, spec: WorkerSpec) -> None:
        threads = spec.n_threads or os.cpu_count() or 1
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = spec.n_ctx * spec.parallel
        cparams.n_batch = spec.n_batch
        cparams.n_ubatch = spec.n_batch
        cparams.n_seq_max = spec.parallel
        # one output per sequence per step, plus one per draft token verified (at most
        # `max` draft tokens in a step, however they are shared among the sequences)
        cparams.n_outputs_max = spec.parallel + max(0, spec.speculative.max)
        if spec.embedding:
            # one pooled vector per sequence; an encoder takes a whole batch in one ubatch,
            # so a batch must hold the longest input
            cparams.embeddings = True
            cparams.pooling_type = (lc.LLAMA_POOLING_TYPE_UNSPECIFIED if spec.pooling is None
                                    else POOLING[spec.pooling])
            cparams.n_batch = cparams.n_ubatch = max(spec.n_batch, spec.n_ctx)
            cparams.n_outputs_max = 0  # every token
        # one KV stream per sequence (like llama-server with -np): each step's attention only
        # spans its own sequence; measured ~10% faster than a unified cache at 8 streams
        cparams.kv_unified = False
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        cparams.no_perf = True
        cparams.flash_attn_type = {
            None: lc.LLAMA_FLASH_ATTN_TYPE_AUTO,
            True: lc.LLAMA_FLASH_ATTN_TYPE_ENABLED,
            False: lc.LLAMA_FLASH_ATTN_TYPE_DISABLED,
        }[spec.flash_attn]
        for attr, name in (("type_k", spec.cache_type_k), ("type_v", spec.cache_type_v)):
            if name not in CACHE_TYPES:
                raise ModelLoadError(f"unknown cache type {name!r}")
            setattr(cparams, attr, CACHE_TYPES[name])
        self.ctx = lc.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise ModelLoadError("failed to create the llama.cpp context")
        self.n_ctx_seq = int(lc.llama_n_ctx_seq(self.ctx))
        if self.n_ctx_seq < spec.n_ctx:
            raise ModelLoadError(f"context per sequence is {self.n_ctx_seq} < {spec.n_ctx}")

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        raw = lc.llama_vocab_get_text(self.vocab, token)
        return raw.decode("utf-8", errors="replace") if raw else ""

    def tokenize(self, text: str, *, add_special: bool) -> list[int]:
        """Token ids of `text`; special-token text is parsed as special tokens."""
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (lc.llama_token * cap)()
        n = int(lc.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, True))
        if n < 0:
            cap = -n
            buf = (lc.llama_token * cap)()
            n = int(lc.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, True))
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """Bytes of one token (special tokens render as nothing); cached."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        buf = self._piece_buf
        n = int(lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False))
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = int(lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False))
        out = buf.raw[:n]
        self._pieces[token] = out
        return out

    def _eog_tokens(self) -> frozenset[int]:
        """All end-of-generation token ids (one pass over the vocabulary, at load)."""
        is_eog, vocab = lc.llama_vocab_is_eog, self.vocab
        return frozenset(t for t in range(self.n_vocab) if is_eog(vocab, t))

    def step(self) -> contextlib.AbstractContextManager[None]:
        """Wrap every serving step (decode, and sampling, which waits for an asynchronous RPC
        backend): with RPC nodes, a step that hangs ends the worker (a load has the front's
        load timeout)."""
        return self._watchdog.step() if self._watchdog else contextlib.nullcontext()

    def warm_up(self, n_tokens: int) -> None:
        """Decode one full batch of ``n_tokens`` and forget it, as llama-server does.

        A full batch runs the large matrix kernels (the ones a broken CPU variant or GPU
        driver dies in), so such a fault fails the load, not the first user request; it also
        pages the weights in.
        """
        token = max(int(lc.llama_vocab_bos(self.vocab)), 0)
        # llama.cpp clamps the context's batch to its size: never ask for more than it took
        n = max(1, min(n_tokens, self.n_ctx_seq, int(lc.llama_n_batch(self.ctx)),
                       int(lc.llama_n_ubatch(self.ctx))))
        arr = (lc.llama_token * n)(*([token] * n))
        rc = int(lc.llama_decode(self.ctx, lc.llama_batch_get_one(arr, n)))  # load's timeout
        lc.llama_memory_clear(self.mem, True)
        if rc != 0:
            raise ModelLoadError(f"warm-up decode of {n} tokens failed ({rc})")

    # KV memory of one sequence
    def seq_rm(self, seq: int, p0: int, p1: int = -1) -> bool:
        return bool(lc.llama_memory_seq_rm(self.mem, seq, p0, p1))

    def seq_cp(self, src: int, dst: int) -> None:
        lc.llama_memory_seq_cp(self.mem, src, dst, -1, -1)

    def seq_pos_min(self, seq: int) -> int:
        return int(lc.llama_memory_seq_pos_min(self.mem, seq))

    def keep_prefix(self, seq: int, n_past: int, n_cached: int) -> int:
        """Trim sequence `seq` (holding `n_cached` tokens) to its first `n_past` tokens, or
        to none where that cannot be done; returns how many it keeps."""
        if n_past < n_cached and (n_past == 0 or not self.seq_rm(seq, n_past)):
            self.seq_rm(seq, -1)  # whole sequence: never fails
            n_past = 0
        # sliding-window layers must still hold the window before position n_past
        if n_past > 0 and self.n_swa > 0 and self.seq_pos_min(seq) > max(0, n_past - self.n_swa):
            self.seq_rm(seq, -1)
            n_past = 0
        return n_past

    def close(self) -> None:
        if self.ctx:
            lc.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            lc.llama_model_free(self.model)
            self.model = None
