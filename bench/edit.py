"""The speculative editing workload: "here is a 60-line function, return it with one change".

One stream at a time, greedy (temperature 0), exactly `max_tokens` (256) new tokens. Most of
the answer is a copy of the prompt, which is what n-gram (prompt lookup) speculation is for.
Two scenarios, every configuration the same requests in each turn:

* `new`: every turn asks for another change (a different variable renamed) than any request
  before it: drafting an answer nobody has seen;
* `same`: every turn repeats the warm-up's request: a proposer that remembers earlier
  answers (llama.cpp's ngram-mod keeps one n-gram table for all requests, halo the worker's
  recent outputs) recalls the answer; this was the only scenario before.

Each configuration's text is compared, turn by turn, with plain greedy decoding of the same
server: a speculative configuration must produce the identical text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench import servers
from bench.workload import Workload

FUNCTION = '''\
def summarize_orders(orders, tax_rate=0.2, discount_codes=None):
    """Summarize a list of orders into totals per customer and per product."""
    if discount_codes is None:
        discount_codes = {}
    per_customer = {}
    per_product = {}
    total = 0.0
    skipped = []
    for order in orders:
        customer = order.get("customer")
        if not customer:
            skipped.append(order)
            continue
        items = order.get("items", [])
        if not items:
            skipped.append(order)
            continue
        subtotal = 0.0
        for item in items:
            name = item["name"]
            price = float(item["price"])
            quantity = int(item.get("quantity", 1))
            if quantity <= 0:
                continue
            line = price * quantity
            subtotal += line
            product = per_product.setdefault(name, {"quantity": 0, "revenue": 0.0})
            product["quantity"] += quantity
            product["revenue"] += line
        code = order.get("discount")
        if code in discount_codes:
            rate = discount_codes[code]
            subtotal = subtotal * (1.0 - rate)
        tax = subtotal * tax_rate
        amount = subtotal + tax
        entry = per_customer.setdefault(customer, {"orders": 0, "amount": 0.0})
        entry["orders"] += 1
        entry["amount"] += amount
        total += amount
    best_customer = None
    best_amount = 0.0
    for customer, entry in per_customer.items():
        if entry["amount"] > best_amount:
            best_customer = customer
            best_amount = entry["amount"]
    best_product = None
    best_quantity = 0
    for name, product in per_product.items():
        if product["quantity"] > best_quantity:
            best_product = name
            best_quantity = product["quantity"]
    return {
        "total": round(total, 2),
        "customers": per_customer,
        "products": per_product,
        "best_customer": best_customer,
        "best_product": best_product,
        "skipped": len(skipped),
    }
'''
# (old name, new name): the warm-up's (and every request of the `same` scenario), then one
# per turn of the `new` scenario (cycled)
WARM_UP_RENAME = ("subtotal", "net")
RENAMES = [("per_customer", "by_customer"), ("amount", "charge"), ("skipped", "ignored"),
           ("per_product", "by_product"), ("best_customer", "top_customer"),
           ("quantity", "count"), ("entry", "record"), ("line", "line_total")]
SCENARIOS = ("new", "same")


def turn_prompt(scenario: str, turn: int) -> str:
    return prompt(WARM_UP_RENAME if scenario == "same" else RENAMES[turn % len(RENAMES)])


def prompt(rename: tuple[str, str]) -> str:
    old, new = rename
    return ("Here is a Python function:\n\n```python\n" + FUNCTION + "```\n\n"
            "Return the whole function unchanged except for one change: rename the variable "
            f"`{old}` to `{new}`. Reply with the code only.")


PROMPT = prompt(WARM_UP_RENAME)
MAX_TOKENS = 256


@dataclass
class EditRun:
    """One request of the editing workload."""

    status: int | None = None
    error: str | None = None
    text: str = ""
    tokens: int | None = None
    ttft: float | None = None
    decode_seconds: float | None = None  # first to last content delta
    wall: float | None = None

    @property
    def decode_tokens_per_second(self) -> float | None:
        if not self.tokens or self.tokens < 2 or not self.decode_seconds:
            return None
        return (self.tokens - 1) / self.decode_seconds

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["decode_tokens_per_second"] = self.decode_tokens_per_second
        return data


@dataclass
class EditResult:
    """Runs of one configuration (a server and a request body) in one scenario."""

    name: str
    scenario: str
    runs: list[EditRun] = field(default_factory=list)

    @property
    def ok(self) -> list[EditRun]:
        return [r for r in self.runs if r.error is None]

    def median(self, key: str) -> float | None:
        values = sorted(v for r in self.ok if (v := getattr(r, key)) is not None)
        return None if not values else values[len(values) // 2]

    @property
    def texts(self) -> list[str | None]:
        """The text of every turn (None where the run failed)."""
        return [r.text if r.error is None else None for r in self.runs]


async def edit_once(workload: Workload, extra: dict[str, Any], text: str) -> EditRun:
    run = EditRun()
    body = workload.body(text)
    body.update(extra)
    start = time.perf_counter()
    first: float | None = None
    last: float | None = None
    parts: list[str] = []
    try:
        async with workload.client(1) as client, client.stream(
            "POST", "/v1/chat/completions", json=body
        ) as resp:
            run.status = resp.status_code
            if resp.status_code != 200:
                run.error = f"HTTP {resp.status_code}: {(await resp.aread())[:300]!r}"
                return run
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                event = json.loads(payload)
                if "error" in event and not event.get("choices"):
                    run.error = f"stream error: {json.dumps(event['error'])[:300]}"
                    return run
                for choice in event.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        now = time.perf_counter()
                        first = now if first is None else first
                        last = now
                        parts.append(content)
                usage = event.get("usage")
                if isinstance(usage, dict):
                    run.tokens = usage.get("completion_tokens")
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        return run
    end = time.perf_counter()
    run.text = "".join(parts)
    run.wall = end - start
    if first is not None and last is not None:
        run.ttft = first - start
        run.decode_seconds = last - first
    return run


@dataclass
class _Config:
    """One server and one request body of the editing workload."""

    spec: servers.ServerSpec
    workload: Workload
    body: dict[str, Any]
    result: EditResult


def bench_edit_servers(specs: list[servers.ServerSpec], model: Path, runs: int, log_dir: Path,
                       records: list[dict[str, Any]],
                       run_async: Callable[[Coroutine[Any, Any, Any]], Any],
                       threads: int) -> None:
    """Start every server, then run each configuration (server and body) once per turn, in
    an order rotated every turn (as bench/turns.py does for the plain workload: a drifting
    machine then slows every configuration alike), and stop them."""
    started: list[servers.RunningServer] = []
    configs: list[_Config] = []
    try:
        for spec in specs:
            print(f"\n=== edit workload: {spec.name}", flush=True)
            try:
                server = servers.start(spec, model, log_dir / "edit", threads)
            except Exception as exc:
                records.append({"server": spec.name, "name": spec.name, "status": "failed",
                                "error": f"{type(exc).__name__}: {exc}"})
                print(f"!!! {spec.name} FAILED to start: {exc}", flush=True)
                continue
            started.append(server)
            workload = Workload(server.base_url, servers.MODEL_ID, MAX_TOKENS,
                                spec.extra_body(MAX_TOKENS))
            run_async(edit_once(workload, {}, PROMPT))  # the `same` scenario's request
            for variant, body in spec.edit_bodies.items():
                name = f"{spec.label or spec.name} {variant}".strip()
                for scenario in SCENARIOS:
                    configs.append(_Config(spec, workload, body, EditResult(name, scenario)))
        for turn in range(runs):
            shift = turn % len(configs) if configs else 0
            for config in configs[shift:] + configs[:shift]:
                text = turn_prompt(config.result.scenario, turn)
                config.result.runs.append(
                    run_async(edit_once(config.workload, config.body, text)))
        for config in configs:
            _record(config, records)
        for server in started:
            _print_spec_counters(server)
    finally:
        for server in started:
            server.stop()


def _print_spec_counters(server: servers.RunningServer) -> None:
    """halo's draft tokens proposed and accepted over the whole run (its /metrics), so a run
    whose speculation did not pay shows whether it drafted at all."""
    if not server.spec.name.startswith("halo"):
        return
    try:
        text = httpx.get(server.base_url + "/metrics", timeout=10).text
    except httpx.HTTPError as exc:
        print(f"    {server.spec.name}: /metrics failed ({exc})", flush=True)
        return
    counts = dict.fromkeys(("proposed", "accepted"), 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for name in counts:
                if sample.name == f"halo_spec_{name}_tokens_total":
                    counts[name] += sample.value
    print(f"    {server.spec.name}: draft tokens proposed {counts['proposed']:.0f}, "
          f"accepted {counts['accepted']:.0f} (whole run)", flush=True)


def _record(config: _Config, records: list[dict[str, Any]]) -> None:
    result = config.result
    record: dict[str, Any] = {"server": config.spec.name, "name": result.name,
                              "scenario": result.scenario, "status": "ok",
                              "runs": [r.to_json() for r in result.runs],
                              "decode_tokens_per_second":
                                  result.median("decode_tokens_per_second"),
                              "ttft": result.median("ttft"), "texts": result.texts}
    records.append(record)
    errors = [r.error for r in result.runs if r.error]
    speed = _fmt(record["decode_tokens_per_second"])
    print(f"    {result.name} ({result.scenario}): decode {speed} tok/s, "
          f"TTFT {_fmt(record['ttft'], 3)} s, tokens "
          f"{sorted({r.tokens for r in result.ok}, key=str)}, errors {len(errors)}"
          + (f" ({errors[0]})" if errors else ""), flush=True)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


PLAIN = "no speculation"  # a halo configuration's reference: the same server's plain decoding


def edit_table(records: list[dict[str, Any]]) -> str:
    """Markdown table per scenario: decode speed, TTFT, and in how many turns the text is
    plain greedy's (a halo server's configurations against its own without speculation,
    llama-server's against plain llama-server, in the same scenario)."""
    lines = ["| scenario | configuration | decode tok/s (median) | TTFT (s) "
             "| x halo without speculation | x own plain | output = plain greedy |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in records:
        if r["status"] != "ok":
            lines.append(f"| | {r['name']} | FAILED | | | | {str(r.get('error'))[:80]} |")
    for scenario in SCENARIOS:
        rows = [r for r in records if r["status"] == "ok" and r.get("scenario") == scenario]
        ok = {r["name"]: r for r in rows}
        plain_of = {r["server"]: r["name"] for r in rows if r["name"].endswith(" " + PLAIN)}
        halo_plain = ok.get(plain_of.get("halo", ""))
        base = halo_plain["decode_tokens_per_second"] if halo_plain else None
        for r in rows:
            ref_name = plain_of.get(r["server"], "llama-server")
            ref = ok.get(ref_name)
            if r["name"] == ref_name:
                same = "(reference)"
            elif ref is None:
                same = "no reference"
            else:
                pairs = [(a, b) for a, b in zip(r["texts"], ref["texts"], strict=False)
                         if a is not None and b is not None]
                equal = sum(a == b for a, b in pairs)
                verdict = "yes" if pairs and equal == len(pairs) else "NO"
                same = f"{verdict} ({equal}/{len(pairs)})"
            speed = r["decode_tokens_per_second"]
            ratio = "-" if speed is None or not base else f"{speed / base:.2f}"
            own = ref["decode_tokens_per_second"] if ref is not None else None
            own_ratio = "-" if speed is None or not own else f"{speed / own:.2f}"
            lines.append(f"| {scenario} | {r['name']} | {_fmt(speed)} | {_fmt(r['ttft'], 3)} "
                         f"| {ratio} | {own_ratio} | {same} |")
    return "\n".join(lines)
