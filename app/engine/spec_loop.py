"""The decode loop's speculative part: per-choice state, drafts into the step's batch, and
verification of the drafts after the decode (the pure parts are speculative.py and
spec_policy.py)."""

from __future__ import annotations

from collections.abc import Callable

from app.engine.batch import Batch
from app.engine.draft import Drafter, Want
from app.engine.jobs import Choice
from app.engine.model import LlamaModel
from app.engine.schema import GenerateRequest, WorkerSpec
from app.engine.spec_policy import DepthAcceptance, StepCost, Wanting, allocate
from app.engine.speculative import RecentOutputs, SpecState, verify_drafts


class Speculator:
    """Speculation of one worker: the draft model if any, the default setting, the cap the
    context is sized for and the measured step cost that decides when drafts pay."""

    def __init__(self, spec: WorkerSpec, model: LlamaModel, drafter: Drafter | None) -> None:
        self.model = model
        self.drafter = drafter
        self.default = spec.speculative
        # most draft tokens per sequence and step the worker's context is sized for; recurrent
        # state cannot drop its last positions, so no speculation there
        self.cap = max(0, spec.speculative.max) if model.can_rollback else 0
        self.step_cost = StepCost()  # decode wall time per batch size
        # acceptance per draft depth over all the worker's sequences: a new one starts there
        self.pooled = DepthAcceptance(self.cap)
        # what the worker's requests generated lately, for n-gram lookups of later ones
        # (drafts recalled from there have acceptance rates of their own)
        self.recent = RecentOutputs()
        self.pooled_recalled = DepthAcceptance(self.cap)

    def close(self) -> None:
        if self.drafter is not None:
            self.drafter.close()

    def state_for(self, req: GenerateRequest, prompt: list[int]) -> SpecState | None:
        """The speculation of one choice: the request's setting, else the model's."""
        want = req.speculative or self.default
        k_max = min(want.max, self.cap)
        always = want.budget == "always"
        if want.type == "ngram" and k_max > 0:
            return SpecState("ngram", k_max, prompt, always=always)
        if want.type == "draft" and k_max > 0 and self.drafter is not None:
            return SpecState("draft", k_max, (), always=always)
        return None

    def add_drafts(self, batch: Batch, active: list[Choice]) -> None:
        """Propose drafts for the choices that speculate this step and add them to `batch`
        (which holds one pending token per choice of `active`), as many as pay for
        themselves on this machine (spec_policy.allocate)."""
        # at most `cap` drafts per step in all: the context's output rows are sized for that
        room = min(batch.capacity - batch.n, self.cap)
        if room <= 0:
            return
        offers: list[tuple[Choice, SpecState, list[int] | None]] = []
        wanting: list[Wanting] = []
        for ch in active:
            spec = ch.spec
            if spec is None:
                continue
            spec.drafts = []
            # never propose past the choice's token limit (so never past the context)
            room_ch = ch.limit - ch.generated - 1
            # n-gram lookups are cheap: look first, so that only real drafts are costed
            if spec.index is not None:
                proposal: list[int] | None = spec.ngram_proposal(room_ch, self.recent)
                if not proposal:
                    continue
                k = len(proposal)
            else:
                proposal, k = None, min(spec.length.want(), room_ch)
                if k <= 0:
                    continue
            offers.append((ch, spec, proposal))
            wanting.append(Wanting(spec.acceptance().gains(k, self._pool(spec))))
        # budget "always": every offer in full (while there is room); the others as far as
        # the measured step cost says they pay
        given: list[int] = []
        forced = 0
        for (_, spec, _), w in zip(offers, wanting, strict=True):
            n = min(w.k, room - forced) if spec.always else 0
            given.append(n)
            forced += n
        rest = allocate(batch.n + forced, len(active),
                        [Wanting(()) if n else w for n, w in zip(given, wanting, strict=True)],
                        self.step_cost, room - forced)
        given = [n or r for n, r in zip(given, rest, strict=True)]
        by_seq: dict[int, SpecState] = {}
        wants: list[Want] = []
        for (ch, spec, proposal), n in zip(offers, given, strict=True):
            if n <= 0:
                continue
            if proposal is not None:
                spec.drafts = proposal[:n]
            else:
                wants.append(Want(ch.slot.seq, ch.slot.tokens, n))
                by_seq[ch.slot.seq] = spec
        if wants and self.drafter is not None:
            for seq, drafts in self.drafter.propose(wants).items():
                by_seq[seq].drafts = drafts
        for ch in active:
            spec = ch.spec
            if spec is not None and spec.drafts:
                slot = ch.slot
                pos = len(slot.tokens)
                spec.draft_idx = batch.n
                for i, token in enumerate(spec.drafts):
                    batch.add(token, pos + i, slot.seq, True)

    def verify(self, ch: Choice, sample: Callable[[int], int],
               emit: Callable[[int, int], None],
               more: Callable[[], bool] = lambda: True) -> None:
        """Sample the target at the pending token and each draft; keep the agreeing drafts.

        `sample(idx)` samples choice `ch` at batch output `idx`; `emit(token, idx)` hands the
        token to the choice (which may end it). When `more()` turns False after a token,
        verification stops there for this step: the drafts before it are kept, the token
        is the next pending one, the drafts after it are dropped (counted as rejected)."""
        spec = ch.spec
        assert spec is not None
        drafts = spec.drafts
        first, rest = ch.out_idx, spec.draft_idx - 1
        slot = ch.slot

        def at(i: int) -> int:
            return first if i == 0 else rest + i

        def emit_at(i: int, token: int) -> bool:
            emit(token, at(i))
            return not ch.done and more()

        accepted = verify_drafts(drafts, lambda i: sample(at(i)), emit_at)
        slot.tokens.extend(drafts[:accepted])
        if accepted < len(drafts):
            self.model.seq_rm(slot.seq, len(slot.tokens))  # KV of the rejected drafts
        spec.record(len(drafts), accepted, self._pool(spec))
        spec.drafts = []

    def _pool(self, spec: SpecState) -> DepthAcceptance:
        return self.pooled_recalled if spec.recalled else self.pooled

    def ended(self, spec: SpecState) -> None:
        """A choice ended: keep what it generated for later requests' lookups."""
        self.recent.add(spec.generated())
