"""From a generate request to a job ready to queue: the prompt, the vocabulary checks, the
grammar, and how many tokens it may generate."""

from __future__ import annotations

import time

from app.engine.grammar import GrammarError
from app.engine.jobs import Job
from app.engine.model import LlamaModel
from app.engine.prompts import PromptBuilder, RequestError
from app.engine.sampling import compile_schema
from app.engine.schema import GenerateRequest, WorkerSpec
from app.errors import EngineCode


class Intake:
    """Turns the requests of one worker's model into jobs."""

    def __init__(self, model: LlamaModel, spec: WorkerSpec) -> None:
        self.model = model
        self.n_ctx = spec.n_ctx
        self.prompts = PromptBuilder(
            tokenize=lambda text, add: model.tokenize(text, add_special=add),
            add_bos=model.add_bos,
            bos_text=model.bos_text,
            eos_text=model.eos_text,
            template_source=spec.chat_template or model.chat_template,
            n_ctx=spec.n_ctx,
            parallel=spec.parallel,
        )

    def job(self, req: GenerateRequest) -> Job:
        """The job of `req`; RequestError (with the code the client gets) if it cannot run."""
        prompt = self.prompts.build(req)
        bad = [t for t in req.logit_bias if not 0 <= t < self.model.n_vocab]
        if bad:
            raise RequestError(
                EngineCode.INVALID_REQUEST, f"logit_bias token id {bad[0]} is outside the "
                f"vocabulary (size {self.model.n_vocab})", {"param": "logit_bias"})
        grammar: str | None = None
        if req.json_schema is not None:
            param = req.json_schema_param
            try:
                grammar = compile_schema(self.model.vocab, req.json_schema)
            except GrammarError as exc:
                raise RequestError(EngineCode.GRAMMAR_REJECTED, f"{param}: {exc}",
                                   {"param": param}) from exc
        limit = self.n_ctx - len(prompt)
        if req.max_tokens is not None:
            limit = max(0, min(limit, req.max_tokens))
        return Job(req, prompt, limit, t_submit=time.perf_counter(), grammar=grammar)
