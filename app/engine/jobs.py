"""State of one admitted request (a job) and of each of its choices, inside the worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.engine.detok import TextStream
from app.engine.sampling import Sampler
from app.engine.schema import Finished, GenerateRequest, TokenLogprob
from app.engine.slots import Slot
from app.engine.speculative import SpecState


@dataclass(eq=False)
class Choice:
    """One of the `n` generations of a request, decoding in its own slot."""

    index: int
    slot: Slot
    sampler: Sampler
    stream: TextStream
    limit: int  # max tokens to generate (max_tokens capped by the slot context)
    generated: int = 0
    last_token: int = -1  # sampled, not yet decoded into the KV cache
    unsent: int = 0  # tokens not reported in a TextDelta yet
    out_idx: int = -1  # output index in the current batch
    done: bool = False
    logprobs: list[TokenLogprob] = field(default_factory=list)  # not sent yet
    text: str = ""  # produced this step, not sent yet
    text_tokens: int = 0  # tokens behind `text` (those after it wait for more text)
    spec: SpecState | None = None  # speculative decoding of this choice (None: off)


@dataclass(eq=False)
class Job:
    """A request from submission to its last choice."""

    req: GenerateRequest
    prompt: list[int]
    limit: int
    t_submit: float
    t_admit: float = 0.0
    t_first: float = 0.0  # prefill finished (first logits)
    cached: int = 0
    n_past: int = 0  # prompt tokens in the first slot's KV cache
    prefill_out: int = -1  # batch output index of the last prompt token
    choices: list[Choice] = field(default_factory=list)
    grammar: str | None = None  # GBNF enforcing req.json_schema

    @property
    def request_id(self) -> str:
        return self.req.request_id

    @property
    def done(self) -> bool:
        return all(c.done for c in self.choices)

    @property
    def completion_tokens(self) -> int:
        return sum(c.generated for c in self.choices)

    @property
    def spec_counts(self) -> tuple[int, int]:
        """Draft tokens proposed and accepted over all choices."""
        specs = [c.spec for c in self.choices if c.spec is not None]
        return sum(s.proposed for s in specs), sum(s.accepted for s in specs)

    def finished(self, now: float) -> Finished:
        """The job's last event, its figures as of `now`."""
        proposed, accepted = self.spec_counts
        return Finished(
            prompt_tokens=len(self.prompt),
            cached_tokens=self.cached,
            completion_tokens=self.completion_tokens,
            queue_ms=(self.t_admit - self.t_submit) * 1000.0,
            prompt_ms=(self.t_first - self.t_admit) * 1000.0,
            decode_ms=(now - self.t_first) * 1000.0,
            spec_proposed=proposed,
            spec_accepted=accepted,
        )
