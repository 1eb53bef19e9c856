"""What goes into the scheduler core (events) and what comes out (actions); plain data.

Every event carries the time it happened (`now`, seconds on the driver's monotonic clock):
the core never reads a clock. Request ids (`rid`) are chosen by the driver and unique.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LOCAL = "local"
"""This box. Other nodes are RPC servers (`halo node`) named by their host:port address."""

StopReason = Literal["memory", "ttl", "api", "removed"]
RejectCode = Literal[
    "not_found",  # 404: unknown (or removed) model
    "invalid",  # 400: more sequences than the model has slots
    "queue_full",  # 503: too many requests waiting
    "busy",  # 429: the model's slots stayed busy for slot_wait seconds
    "insufficient_memory",  # 503: can never fit the budget
    "load_failed",  # 503: the load this request waited for failed
    "backoff",  # 503: the worker keeps dying; not restarted before retry_at
]


@dataclass(frozen=True)
class ModelSpec:
    """What the core knows of a catalog model."""

    model_id: str
    need: int  # estimated bytes when loaded (on `node`)
    slots: int  # sequences the worker runs at once (`parallel`)
    pinned: bool = False
    ttl: float = 300.0  # idle seconds before unloading; 0 = never
    node: str = LOCAL
    # a model split over RPC nodes: the bytes it needs on each of them (held while it holds
    # `need` on its own node)
    nodes: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Limits:
    budget: int  # bytes of the local node's pool
    node_budgets: tuple[tuple[str, int], ...] = ()  # RPC nodes: address -> bytes it offers
    max_waiting: int = 64  # requests waiting for a model or slot before 503
    slot_wait: float = 60.0  # seconds a request waits for free slots of a loaded model, then 429
    swap_after: float = 10.0  # ping-pong guard (policy.decide)
    crash_limit: int = 3  # worker deaths in a row (load or serving) before backing off
    backoff: float = 5.0  # first back-off, doubled per further death
    backoff_cap: float = 300.0


# ---- events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrive:
    """A request for `sequences` slots of `model` (an `n`-choice request takes n)."""

    rid: int
    model: str
    sequences: int
    now: float


@dataclass(frozen=True)
class LoadRequest:
    """POST /models/load: answered Done(True) once loaded; takes no slot; skips a back-off."""

    rid: int
    model: str
    now: float


@dataclass(frozen=True)
class UnloadRequest:
    """POST /models/unload: answered Done(was_loaded) once the worker is gone."""

    rid: int
    model: str
    now: float


@dataclass(frozen=True)
class LoadDone:
    model: str
    epoch: int
    measured: int  # bytes the worker reports using (0 = unknown)
    now: float


@dataclass(frozen=True)
class LoadFailed:
    model: str
    epoch: int
    reason: str
    now: float


@dataclass(frozen=True)
class WorkerExited:
    """The worker process of a load is gone (crash, or the end of a stop)."""

    model: str
    epoch: int
    reason: str
    now: float


@dataclass(frozen=True)
class WorkerStopped:
    """A StopWorker was carried out: the process is gone."""

    model: str
    epoch: int
    now: float


@dataclass(frozen=True)
class RequestEnded:
    """A granted request finished (or failed); `worker_alive` = its worker still runs."""

    rid: int
    worker_alive: bool
    now: float


@dataclass(frozen=True)
class Cancelled:
    """The client of a request went away (before or after its grant)."""

    rid: int
    now: float


@dataclass(frozen=True)
class Tick:
    now: float


@dataclass(frozen=True)
class CatalogChanged:
    """Models added (or changed: same id, new spec) and removed."""

    added: tuple[ModelSpec, ...]
    removed: tuple[str, ...]
    now: float


@dataclass(frozen=True)
class NodeBudget:
    """An RPC node that was down at startup answered: what it offers from now on."""

    node: str
    budget: int
    now: float


Event = (
    Arrive | LoadRequest | UnloadRequest | LoadDone | LoadFailed | WorkerExited | WorkerStopped
    | RequestEnded | Cancelled | Tick | CatalogChanged | NodeBudget
)


# ---- actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartLoad:
    model: str
    epoch: int


@dataclass(frozen=True)
class StopWorker:
    model: str
    epoch: int
    reason: StopReason


@dataclass(frozen=True)
class Drain:
    """The model takes no new requests; stopped when its last one ends."""

    model: str
    reason: StopReason


@dataclass(frozen=True)
class Grant:
    """Run request `rid` on the worker of load `epoch` of `model`."""

    rid: int
    model: str
    epoch: int
    sequences: int


@dataclass(frozen=True)
class Done:
    """Answer to a LoadRequest (True) or an UnloadRequest (whether it was loaded)."""

    rid: int
    model: str
    value: bool


@dataclass(frozen=True)
class Reject:
    rid: int
    model: str
    code: RejectCode
    message: str
    retry_after: float | None = None


@dataclass(frozen=True)
class MarkFailed:
    """The load failed or the worker died; `retry_at` set once it backs off."""

    model: str
    epoch: int
    during: Literal["load", "serving"]
    reason: str
    failures: int
    retry_at: float | None


@dataclass(frozen=True)
class Forget:
    """A removed model is gone from the core (its worker, if any, was stopped)."""

    model: str


Action = StartLoad | StopWorker | Drain | Grant | Done | Reject | MarkFailed | Forget
