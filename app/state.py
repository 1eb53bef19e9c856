"""What one app instance owns; stored on ``app.state.halo`` by create_app()."""

from __future__ import annotations

from dataclasses import dataclass

from app.catalog.catalog import Catalog
from app.config import Settings
from app.hardware.nodes import NodeInfo
from app.hardware.probe import ProbeReport
from app.metrics import Metrics
from app.scheduler.driver import Scheduler
from app.services.generation import GenerationService
from app.services.model_store import ModelStore
from app.services.response_store import ResponseStore


@dataclass
class AppState:
    settings: Settings
    catalog: Catalog  # the catalog now: ModelStore.refresh replaces it when the dir changes
    scheduler: Scheduler
    probe: ProbeReport
    metrics: Metrics
    generation: GenerationService
    store: ModelStore  # pull / fit / remove, and the live catalog behind `catalog`
    responses: ResponseStore  # stored Responses API responses (previous_response_id)
    nodes: tuple[NodeInfo, ...] = ()  # RPC nodes as probed at startup (their budgets)

    @property
    def backend(self) -> str:
        return self.probe.choice.backend
