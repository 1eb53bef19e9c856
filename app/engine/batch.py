"""A preallocated llama_batch, filled in place every decode step (one sequence id per token)."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import llama_cpp.llama_cpp as lc


class Batch:
    """Fixed-capacity batch with ctypes array views over its C buffers."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._raw: Any = lc.llama_batch_init(capacity, 0, 1)
        raw = self._raw
        self._token = (ctypes.c_int32 * capacity).from_address(ctypes.addressof(raw.token.contents))
        self._pos = (ctypes.c_int32 * capacity).from_address(ctypes.addressof(raw.pos.contents))
        n_seq = (ctypes.c_int32 * capacity).from_address(ctypes.addressof(raw.n_seq_id.contents))
        self._logits = (ctypes.c_int8 * capacity).from_address(
            ctypes.addressof(raw.logits.contents)
        )
        self._seq = [raw.seq_id[i] for i in range(capacity)]
        n_seq[:] = [1] * capacity
        self.n = 0

    def clear(self) -> None:
        self.n = 0

    def add(self, token: int, pos: int, seq: int, logits: bool) -> int:
        """Append one token; returns its index in the batch (the output index if logits)."""
        i = self.n
        self._token[i] = token
        self._pos[i] = pos
        self._seq[i][0] = seq
        self._logits[i] = logits
        self.n = i + 1
        return i

    def add_run(self, tokens: Sequence[int], pos0: int, seq: int, last_logits: bool) -> int:
        """Append consecutive tokens of one sequence; returns the index of the last one."""
        i, k = self.n, len(tokens)
        j = i + k
        self._token[i:j] = list(tokens)
        self._pos[i:j] = list(range(pos0, pos0 + k))
        self._logits[i:j] = [0] * k
        for s in self._seq[i:j]:
            s[0] = seq
        if last_logits:
            self._logits[j - 1] = 1
        self.n = j
        return j - 1

    def add_run_all(self, tokens: Sequence[int], seq: int) -> None:
        """Append a whole input of one sequence from position 0, every token an output."""
        i, k = self.n, len(tokens)
        j = i + k
        self._token[i:j] = list(tokens)
        self._pos[i:j] = list(range(k))
        self._logits[i:j] = [1] * k
        for s in self._seq[i:j]:
            s[0] = seq
        self.n = j

    def seq_ids(self) -> list[int]:
        """The sequence id of each token now in the batch, in batch order."""
        return [self._seq[i][0] for i in range(self.n)]

    def decode(self, ctx: Any) -> int:
        """llama_decode of the current contents; returns llama.cpp's status code."""
        self._raw.n_tokens = self.n
        return int(lc.llama_decode(ctx, self._raw))

    def free(self) -> None:
        if self._raw is not None:
            lc.llama_batch_free(self._raw)
            self._raw = None
