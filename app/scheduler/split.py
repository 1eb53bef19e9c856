"""How a model's layers are split between this box and RPC nodes, and the memory per box (pure).

A "place" is this box ("local") or one node address. The front computes a SplitPlan from the
shares (models.toml `tensor_split`, else the places' budgets) and hands the worker the exact
llama.cpp parameters, so the ledger's per-node split and the worker's are the same numbers.

llama.cpp's assignment (vendor/llama.cpp/src/llama-model.cpp load_tensors): layers
il < i_gpu_start = n_layer + 1 - n_gpu_layers stay on the CPU; the others (the output layer is
il = n_layer) go to devices[k], k = upper_bound(cumulative normalised tensor_split,
(il - i_gpu_start) / act_gpu_layers). The input embeddings always stay on the CPU.
- local offload device (Vulkan/ROCm): devices = [node devices..., local device] (llama.cpp's
  own order: RPC first, the local device keeps the output layer), every layer offloaded.
- local CPU only: devices = [node devices...]; the first layers stay local, n_gpu_layers
  sends the rest to the nodes.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.catalog.shards import ModelFile
from app.scheduler.estimate import MemoryEstimate

LOCAL = "local"


@dataclass(frozen=True)
class SplitPlan:
    """Layers per place and the llama.cpp parameters that produce them."""

    places: tuple[str, ...]  # LOCAL first, then node addresses
    layers: tuple[int, ...]  # per place; layer n_layer is the output layer
    n_gpu_layers: int
    tensor_split: tuple[float, ...]  # per llama.cpp device, in device order
    nodes_first: bool  # device order: the nodes' devices, then the local offload device

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.places[1:]

    def place_of_layer(self, il: int) -> str:
        start = 0
        for place, count in zip(self._order(), self._counts(), strict=True):
            if il < start + count:
                return place
            start += count
        raise IndexError(il)

    def _order(self) -> tuple[str, ...]:
        # layer order on the trunk: local-CPU layers come first, a local device comes last
        return (*self.nodes, LOCAL) if self.nodes_first else self.places

    def _counts(self) -> tuple[int, ...]:
        by_place = dict(zip(self.places, self.layers, strict=True))
        return tuple(by_place[p] for p in self._order())


def assign(n_layer: int, n_gpu_layers: int, tensor_split: Sequence[float]) -> list[int]:
    """Device index per layer 0..n_layer (-1 = CPU), exactly as llama.cpp assigns them."""
    total = sum(tensor_split)
    cumulative, acc = [], 0.0
    for share in tensor_split:
        acc += share
        cumulative.append(acc / total if total else 0.0)
    i_gpu_start = max(n_layer + 1 - n_gpu_layers, 0)
    act = min(n_gpu_layers, n_layer + 1) if tensor_split else 0
    out = []
    for il in range(n_layer + 1):
        if il < i_gpu_start or il - i_gpu_start >= act:
            out.append(-1)
        else:
            k = bisect.bisect_right(cumulative, (il - i_gpu_start) / act)
            out.append(min(k, len(tensor_split) - 1))
    return out


def plan(n_layer: int, nodes: Sequence[str], shares: Sequence[float], *,
         local_offload: bool) -> SplitPlan:
    """Split `n_layer` trunk layers + the output layer by `shares` (LOCAL first, then nodes)."""
    if len(shares) != len(nodes) + 1:
        raise ValueError(f"tensor_split needs {len(nodes) + 1} shares (this box first, then "
                         f"each node), got {len(shares)}")
    if any(s < 0 for s in shares) or sum(shares) <= 0:
        raise ValueError("tensor_split shares must be >= 0 with a positive sum")
    places = (LOCAL, *nodes)
    total = sum(shares)
    if local_offload:
        split = (*shares[1:], shares[0])
        ngl = n_layer + 1
    else:
        local_layers = round(shares[0] / total * (n_layer + 1))
        if not nodes:
            local_layers = n_layer + 1
        ngl = n_layer + 1 - local_layers
        split = tuple(shares[1:])
    devices = assign(n_layer, ngl, split)
    counts = dict.fromkeys(places, 0)
    order = (*nodes, LOCAL) if local_offload else nodes
    for k in devices:
        counts[LOCAL if k < 0 else order[k]] += 1
    return SplitPlan(places, tuple(counts[p] for p in places), ngl, tuple(split), local_offload)


def split_memory(file: ModelFile, est: MemoryEstimate, split: SplitPlan) -> dict[str, int]:
    """The estimate divided among the places: each layer's tensors and KV/recurrent share go
    where the layer goes, input embeddings stay local (with tied embeddings the output layer's
    place holds a second copy, as llama.cpp makes one), every node also needs a compute buffer,
    the process overhead is local."""
    n_layer = file.info.block_count or 0
    per_layer = [0] * (n_layer + 1)
    local_extra = 0
    for t in file.tensors:
        il = _layer_of(t.name, n_layer)
        if il is None:
            local_extra += t.n_bytes  # token embeddings and other non-layer tensors
        else:
            per_layer[il] += t.n_bytes
    names = {t.name: t.n_bytes for t in file.tensors}
    if "output.weight" not in names:  # tied embeddings: the output layer gets its own copy
        per_layer[n_layer] += names.get("token_embd.weight", 0)
    out = dict.fromkeys(split.places, 0)
    trunk = max(n_layer, 1)
    for il in range(n_layer + 1):
        place = split.place_of_layer(il)
        out[place] += per_layer[il]
        if il < n_layer:
            out[place] += (est.kv + est.recurrent) * 1 // trunk  # spread evenly over the trunk
    # integer spreading loses a few bytes: give the rest to the local box
    assigned_kv = (est.kv + est.recurrent) // trunk * n_layer if n_layer else 0
    out[LOCAL] += local_extra + est.overhead + (est.kv + est.recurrent - assigned_kv)
    for place in split.places:
        if place == LOCAL or out[place]:
            out[place] += est.compute
    out[LOCAL] += max(0, est.weights - sum(t.n_bytes for t in file.tensors))
    return out


def _layer_of(name: str, n_layer: int) -> int | None:
    """blk.N.* -> N; output / output_norm -> n_layer (the output layer); else None."""
    if name.startswith("blk."):
        num = name.split(".", 2)[1]
        return int(num) if num.isdigit() and int(num) < n_layer else None
    if name.startswith("output"):
        return n_layer
    return None


def default_shares(budgets: Mapping[str, int], places: Sequence[str]) -> list[float]:
    """Shares proportional to each place's budget (what llama.cpp does by free memory)."""
    return [float(max(budgets.get(p, 0), 0)) for p in places]
