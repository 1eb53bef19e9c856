"""Wiring for models split across this box and RPC nodes (used by factory.py).

At startup every node in `settings.nodes` is asked for its free device memory: that is the
node's budget in the ledger (a node serves one model at a time, so its free memory when idle
is what a model may use). A model with `nodes` gets a SplitPlan from its `tensor_split`, else
from the budgets; its estimate is divided by that plan, and its WorkerSpec carries the plan.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from app.catalog.catalog import ModelEntry
from app.engine.schema import WorkerSpec
from app.hardware.nodes import NodeInfo, query_node, query_nodes
from app.scheduler.estimate import MemoryEstimate
from app.scheduler.split import LOCAL, SplitPlan, default_shares, plan, split_memory

log = logging.getLogger(__name__)


@dataclass
class Cluster:
    """This box's budget and each node's, as measured at startup (a node down then is asked
    again by `heal` until it answers)."""

    local_budget: int
    nodes: tuple[NodeInfo, ...] = ()
    local_offload: bool = False  # this box's share goes to a GPU (else it stays on the CPU)
    on_change: list[Callable[[NodeInfo], None]] = field(default_factory=list)

    @property
    def budgets(self) -> dict[str, int]:
        out = {LOCAL: self.local_budget}
        for node in self.nodes:
            out[node.address] = node.free_bytes if node.ok else 0
        return out

    @property
    def node_budgets(self) -> dict[str, int]:
        return {address: budget for address, budget in self.budgets.items() if address != LOCAL}

    def plan_for(self, entry: ModelEntry) -> SplitPlan | None:
        if not entry.nodes:
            return None
        places = (LOCAL, *entry.nodes)
        # a node that is down has no budget yet: split as if it offered what this box does,
        # so the plan stays valid once it answers (the ledger admits nothing before that)
        budgets = {p: b if b or p == LOCAL else self.local_budget
                   for p, b in self.budgets.items()}
        shares = list(entry.tensor_split or default_shares(budgets, places))
        if sum(shares) <= 0:
            shares = [1.0] * len(places)
        n_layer = entry.file.info.block_count or 0
        return plan(n_layer, entry.nodes, shares, local_offload=self.local_offload)

    def split(self, entry: ModelEntry, est: MemoryEstimate) -> dict[str, int]:
        """Bytes the model needs per place (LOCAL and its nodes)."""
        split = self.plan_for(entry)
        if split is None:
            return {LOCAL: est.total}
        return split_memory(entry.file, est, split)

    def spec(self, spec: WorkerSpec, entry: ModelEntry) -> WorkerSpec:
        split = self.plan_for(entry)
        if split is None:
            return spec
        speculative = spec.speculative
        if speculative.type == "draft":
            # a draft model over llama.cpp's RPC backend has crashed (notes: strix-halo.md);
            # prompt-lookup speculation only changes the batch and is kept
            speculative = dataclasses.replace(speculative, type="ngram")
        return dataclasses.replace(spec, rpc_nodes=split.nodes, n_gpu_layers=split.n_gpu_layers,
                                   tensor_split=split.tensor_split,
                                   nodes_first=split.nodes_first, speculative=speculative,
                                   draft_path=None)

    def node_info(self, address: str) -> NodeInfo | None:
        return next((n for n in self.nodes if n.address == address), None)

    async def heal(self, every: float = 10.0) -> None:
        """Ask the nodes that did not answer at startup again, every `every` seconds, until
        all have; each that answers is reported to `on_change` (the ledger, /system)."""
        while any(not n.ok for n in self.nodes):
            await asyncio.sleep(every)
            for node in [n for n in self.nodes if not n.ok]:
                info = await query_node(node.address)
                if not info.ok:
                    continue
                log.info("node is up", extra={"node": info.address,
                                              "free_bytes": info.free_bytes})
                self.nodes = tuple(info if n.address == info.address else n for n in self.nodes)
                for callback in self.on_change:
                    callback(info)


def probe_nodes(addresses: Sequence[str], timeout: float = 3.0) -> tuple[NodeInfo, ...]:
    """query_nodes from sync code, also when an event loop is already running."""
    if not addresses:
        return ()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        infos = pool.submit(asyncio.run, query_nodes(addresses, timeout=timeout)).result()
    for info in infos:
        level = logging.INFO if info.ok else logging.WARNING
        log.log(level, "node", extra={"node": info.address, "status": info.status,
                                      "free_bytes": info.free_bytes, "error": info.error})
    return tuple(infos)


def describe_need(need: Mapping[str, int], budgets: Mapping[str, int]) -> str:
    """"local 1.2/8.0 GiB, box2:50052 40.1/30.0 GiB" (need/budget per place)."""
    return ", ".join(f"{p} {n / 2**30:.2f}/{budgets.get(p, 0) / 2**30:.2f} GiB"
                     for p, n in need.items())
