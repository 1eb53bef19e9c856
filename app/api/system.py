"""GET /system: the probe report, the memory pool and the ledger."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import StateDep

router = APIRouter()


@router.get("/system")
async def system(state: StateDep) -> dict[str, Any]:
    scheduler = state.scheduler
    ledger = [
        {"model": s.entry.id, "status": s.status, "reserved_bytes": s.reserved,
         "estimate_bytes": s.estimate.total, "measured_bytes": s.measured or None,
         "estimate": s.estimate.describe(), "pinned": s.entry.pinned,
         "nodes": s.nodes or None}
        for s in scheduler.states()
    ]
    probed = {info.address: info for info in state.nodes}
    nodes = []
    for node, (budget, reserved) in scheduler.nodes().items():
        row: dict[str, Any] = {"node": node, "budget_bytes": budget,
                               "reserved_bytes": reserved, "free_bytes": budget - reserved}
        info = probed.get(node)
        if info is not None:  # an RPC node: what it answered at startup (its budget)
            row.update(status=info.status, rpc_version=info.version, error=info.error)
        nodes.append(row)
    budget = scheduler.limits.budget
    return {
        "probe": state.probe.to_dict(),
        "memory": {"budget_bytes": budget, "reserved_bytes": scheduler.reserved,
                   "free_bytes": budget - scheduler.reserved, "ledger": ledger,
                   "nodes": nodes},
    }
