"""Prometheus metrics of one app (its own registry; label `model` is always a catalog id)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from app.engine.client import Accepted, ChoiceEnd, Event, Finished, TextDelta
from app.live import Finished as FinishedRequest
from app.live import LiveStats

# Buckets wide enough for a 135M model on a CPU and an 80B model on an iGPU.
_TTFT = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_ITL = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5)
_E2E = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640, 1800)
_QUEUE = (0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_REQUEST_STATUSES = (
    "ok", "cancelled", "context_length_exceeded", "invalid_request", "engine_error",
    "internal_error", "model_load_failed", "insufficient_memory", "queue_full", "model_busy",
)
_LOAD = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.live = LiveStats()  # the web page's rates and recent requests (GET /events)
        r = self.registry
        self.prompt_tokens = Counter("halo_prompt_tokens", "Prompt tokens processed (incl. "
                                     "cached).", ["model"], registry=r)
        self.generation_tokens = Counter("halo_generation_tokens", "Tokens generated, counted "
                                         "as they stream.", ["model"], registry=r)
        self.requests = Counter("halo_requests", "Finished requests by outcome.",
                                ["model", "status"], registry=r)
        self.loads = Counter("halo_model_loads", "Model loads by result.", ["model", "result"],
                             registry=r)
        self.evictions = Counter("halo_model_evictions", "Models unloaded, by reason.",
                                 ["model", "reason"], registry=r)
        self.ttft = Histogram("halo_time_to_first_token_seconds", "Request arrival to first "
                              "token.", ["model"], buckets=_TTFT, registry=r)
        self.itl = Histogram("halo_inter_token_latency_seconds", "Time between tokens of one "
                             "stream.", ["model"], buckets=_ITL, registry=r)
        self.e2e = Histogram("halo_e2e_request_latency_seconds", "Request arrival to last "
                             "token.", ["model"], buckets=_E2E, registry=r)
        self.queue_time = Histogram("halo_queue_time_seconds", "Arrival to start of prefill "
                                    "(waiting for a load or a slot).", ["model"],
                                    buckets=_QUEUE, registry=r)
        self.load_time = Histogram("halo_model_load_seconds", "Worker start to model ready.",
                                   ["model"], buckets=_LOAD, registry=r)
        self.spec_proposed = Counter("halo_spec_proposed_tokens", "Draft tokens verified by "
                                     "speculative decoding.", ["model"], registry=r)
        self.spec_accepted = Counter("halo_spec_accepted_tokens", "Draft tokens the model "
                                     "accepted (speculative decoding).", ["model"], registry=r)
        self.running = Gauge("halo_requests_running", "Requests generating.", ["model"],
                             registry=r)
        self.waiting = Gauge("halo_requests_waiting", "Requests waiting for a model or slot.",
                             ["model"], registry=r)
        self.loaded = Gauge("halo_model_loaded", "1 if the model is loaded.", ["model"],
                            registry=r)
        self.memory = Gauge("halo_model_memory_bytes", "Memory per model: reserved in the "
                            "ledger, measured after load, estimated.", ["model", "kind"],
                            registry=r)
        self.estimate_error = Gauge("halo_memory_estimate_error_ratio", "(estimate - measured) "
                                    "/ measured after the last load.", ["model"], registry=r)
        self.pool = Gauge("halo_memory_pool_bytes", "The memory budget and its use.", ["kind"],
                          registry=r)
        self.node_memory = Gauge("halo_memory_node_bytes", "Per node (this box = \"local\", "
                                 "RPC nodes by address): its budget and the reservations on "
                                 "it.", ["node", "kind"], registry=r)
        self.model_node_memory = Gauge("halo_model_node_memory_bytes", "Bytes a model split "
                                       "over RPC nodes needs on each node.", ["model", "node"],
                                       registry=r)
        self.backend = Gauge("halo_backend_info", "The chosen llama.cpp backend.",
                             ["backend", "devices"], registry=r)

    def declare_models(self, model_ids: Iterable[str]) -> None:
        """Create every per-model series at zero so dashboards show them before traffic."""
        for model in model_ids:
            self.prompt_tokens.labels(model)
            self.generation_tokens.labels(model)
            self.spec_proposed.labels(model)
            self.spec_accepted.labels(model)
            self.running.labels(model).set(0)
            self.waiting.labels(model).set(0)
            self.loaded.labels(model).set(0)
            # every labelled series exists from the start, so rate()/increase() see the
            # first event (a series born at 1 has no earlier sample to increase from)
            for result in ("ok", "failed"):
                self.loads.labels(model, result)
            for reason in ("api", "ttl", "memory", "crashed"):
                self.evictions.labels(model, reason)
            for status in _REQUEST_STATUSES:
                self.requests.labels(model, status)
            for hist in (self.ttft, self.itl, self.e2e, self.queue_time, self.load_time):
                hist.labels(model)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def track(self, model: str) -> RequestTracker:
        return RequestTracker(self, model)


class RequestTracker:
    """Follows one request's events and records its metrics (and live stats) as they happen."""

    def __init__(self, metrics: Metrics, model: str) -> None:
        self._m = metrics
        self._model = model
        self._start = time.perf_counter()
        self._last_token: float | None = None
        self._accepted: float | None = None
        self._ttft: float | None = None
        self._prompt = self._uncached = self._tokens = 0
        self._state = "waiting"
        metrics.waiting.labels(model).inc()
        metrics.live.arrived(model)
        # the per-token series, looked up once per request rather than once per token
        self._generated = metrics.generation_tokens.labels(model)
        self._itl = metrics.itl.labels(model)

    def _leave(self) -> None:
        gauge = self._m.waiting if self._state == "waiting" else self._m.running
        if self._state in ("waiting", "running"):
            gauge.labels(self._model).dec()
            self._m.live.left(self._model, self._state)

    def _first_token(self, now: float) -> None:
        self._ttft = now - self._start
        self._m.ttft.labels(self._model).observe(self._ttft)
        if self._accepted is not None:
            self._m.live.prefilled(self._model, self._uncached, now - self._accepted)

    def on_event(self, event: Event) -> None:
        m, model = self._m, self._model
        now = time.perf_counter()
        if isinstance(event, Accepted):
            self._leave()
            self._state = "running"
            m.running.labels(model).inc()
            m.queue_time.labels(model).observe(now - self._start)
            m.prompt_tokens.labels(model).inc(event.prompt_tokens)
            m.live.started(model, event.prompt_tokens)
            self._accepted = now
            self._prompt = event.prompt_tokens
            self._uncached = event.prompt_tokens - event.cached_tokens
        elif isinstance(event, TextDelta) and event.n_tokens:
            self._generated.inc(event.n_tokens)
            m.live.generated(model, event.n_tokens)
            self._tokens += event.n_tokens
            if self._last_token is None:
                self._first_token(now)
            else:
                gap = (now - self._last_token) / event.n_tokens
                itl = self._itl
                for _ in range(event.n_tokens):
                    itl.observe(gap)
            self._last_token = now
        elif isinstance(event, ChoiceEnd) and self._last_token is None:
            self._first_token(now)
            self._last_token = now
        elif isinstance(event, Finished):
            m.e2e.labels(model).observe(now - self._start)
            if event.spec_proposed:
                m.spec_proposed.labels(model).inc(event.spec_proposed)
                m.spec_accepted.labels(model).inc(event.spec_accepted)

    def close(self, status: str) -> None:
        """Record the outcome once: "ok", an error code, or "cancelled"."""
        if self._state == "closed":
            return
        self._leave()
        self._state = "closed"
        self._m.requests.labels(self._model, status).inc()
        start = self._start
        self._m.live.finished(FinishedRequest(
            model=self._model, status=status, ended_at=self._m.live.now(), ttft=self._ttft,
            queue=self._accepted - start if self._accepted is not None else None,
            prompt_tokens=self._prompt, generated_tokens=self._tokens,
            duration=time.perf_counter() - start))
