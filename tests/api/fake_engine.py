"""A small hand-written engine for HTTP-contract tests (no llama.cpp, no process)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import struct
from collections.abc import AsyncIterator

from app.engine.client import (
    Accepted,
    ChoiceEnd,
    Embedded,
    EmbedRequest,
    Event,
    Failed,
    Finished,
    GenerateRequest,
    LoadReport,
    TextDelta,
    TokenLogprob,
    WorkerSpec,
    WorkerStats,
)
from app.errors import EngineCode

REPLY = ["Hello", " from", " the", " fake", " engine", "."]
# replied when the prompt says TOOLCALL: a Hermes tool call, split mid-markup
TOOL_REPLY = ["Let me look. <tool", "_call>\n{\"name\": \"get_weather\", ",
              "\"arguments\": {\"city\": \"Paris\"}}", "\n</tool_call>"]
_PIDS = itertools.count(100000)


def _logprobs(piece: str, top: int | None) -> tuple[TokenLogprob, ...]:
    """One made-up entry per piece (-0.5), alternatives at -1, -2, ..."""
    if top is None:
        return ()
    alternatives = tuple((f"alt{i}".encode(), -1.0 - i) for i in range(top))
    return (TokenLogprob(piece.encode(), -0.5, alternatives),)


OPENED_REPLY = ["\nweigh", " it", "</th", "ink>", "\n\nDone."]
THINK_REPLY = ["<think>", "\nplan it", "</think>", "\n\nDone."]
# issue 13: trailing whitespace of the reasoning arrives before </think>
SPACE_THINK_REPLY = ["<think>", "\nhmm, 2+2 ", "\n", "</think>", "\n\nIt is 4."]


class FakeEngine:
    """Replies with REPLY (cut at max_tokens); 'FAIL:<code>' in the prompt fails first."""

    def __init__(self, spec: WorkerSpec, delay: float = 0.0) -> None:
        self.spec = spec
        self.delay = delay
        self.cancelled: list[str] = []
        self.requests: list[GenerateRequest] = []
        self.embedded: list[EmbedRequest] = []
        self.crashed: set[str] = set()
        self._alive = True
        self._exit = asyncio.Event()
        self._exit_reason = "the model was unloaded"
        self._pid = next(_PIDS)
        self.report = LoadReport(
            pid=self._pid, load_seconds=0.0, n_ctx=spec.n_ctx, parallel=spec.parallel,
            n_ctx_train=8192, n_vocab=49152, model_bytes=1, kv_bytes=1, compute_bytes=1,
            rss_bytes=1, has_chat_template=True, backend_devices=("CPU",),
        )

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def alive(self) -> bool:
        return self._alive

    async def stats(self) -> WorkerStats:
        return WorkerStats(self.spec.parallel, 0, 0, 0, 1)

    async def generate(self, req: GenerateRequest) -> AsyncIterator[Event]:
        self.requests.append(req)
        text = req.prompt or " ".join(str(m["content"]) for m in req.messages or [])
        if "DIEDBEFORE" in text and req.request_id not in self.crashed:
            self.crashed.add(req.request_id)  # another request killed the worker before
            yield Failed(EngineCode.WORKER_CRASHED, "the worker died", {})  # this one started
            return
        if "FAIL:" in text:
            code = text.split("FAIL:", 1)[1].split()[0]
            yield Failed(EngineCode(code), f"fake failure {code}",
                         {"prompt_tokens": 9, "n_ctx": 8})
            return
        opened = "OPENTHINK" in text  # as if the template ended the prompt inside <think>
        yield Accepted(prompt_tokens=len(text.split()), cached_tokens=0, thinking_opened=opened)
        try:
            reply = (TOOL_REPLY if "TOOLCALL" in text else OPENED_REPLY if opened
                     else SPACE_THINK_REPLY if "SPACETHINK" in text
                     else THINK_REPLY if "THINK" in text else REPLY)
            limit = req.max_tokens or len(reply)
            for index in range(req.n):
                for piece in reply[:limit]:
                    await asyncio.sleep(self.delay)
                    yield TextDelta(index, piece, 1, _logprobs(piece, req.logprobs))
                if "CRASH" in text:
                    yield Failed(EngineCode.WORKER_CRASHED, "the worker died", {})
                    return
                reason = "length" if limit < len(reply) else "stop"
                yield ChoiceEnd(index, reason, min(limit, len(reply)))
            # as if speculation verified 4 drafts and kept 3 (when the request asks for it)
            spec = req.speculative is not None and req.speculative.type != "off"
            yield Finished(len(text.split()), 0, req.n * min(limit, len(reply)), 0.1, 1.0, 2.0,
                           spec_proposed=4 if spec else 0, spec_accepted=3 if spec else 0)
        except BaseException:
            self.cancelled.append(req.request_id)
            raise

    async def embed(self, req: EmbedRequest) -> Embedded | Failed:
        """A made-up unit vector per input (a hash of its text), 8 dimensions."""
        self.embedded.append(req)
        vectors = []
        tokens = 0
        for item in req.inputs:
            text = item if isinstance(item, str) else " ".join(map(str, item))
            if "FAIL:" in text:
                code = text.split("FAIL:", 1)[1].split()[0]
                return Failed(EngineCode(code), f"fake failure {code}", {"param": "input"})
            tokens += len(text.split())
            digest = hashlib.sha256(text.encode()).digest()
            values = [b - 127.5 for b in digest[:8]]
            norm = math.sqrt(sum(v * v for v in values))
            vectors.append(struct.pack("<8f", *(v / norm for v in values)))
        return Embedded(tuple(vectors), tokens)

    async def stop(self, timeout: float = 10.0) -> None:
        self._alive = False
        self._exit.set()

    async def exited(self) -> str:
        await self._exit.wait()
        return self._exit_reason

    def crash(self, reason: str = "worker exited with code -9 (SIGKILL)") -> None:
        """As if the worker process died."""
        self._alive = False
        self._exit_reason = reason
        self._exit.set()


class FakeFactory:
    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.started: list[FakeEngine] = []

    async def __call__(self, spec: WorkerSpec) -> FakeEngine:
        engine = FakeEngine(spec, self.delay)
        self.started.append(engine)
        return engine
