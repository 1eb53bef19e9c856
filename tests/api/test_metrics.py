"""/metrics values agree with what clients were told."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.sse_util import sse_events

pytestmark = pytest.mark.anyio

SMOL = "SmolLM2-135M-Instruct.Q4_1"


async def samples(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                      float]:
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_token_counters_match_usage(client: httpx.AsyncClient) -> None:
    before = await samples(client)
    assert before[("halo_generation_tokens_total", (("model", SMOL),))] == 0
    usage_total = prompt_total = 0
    for body in ({"model": SMOL, "messages": [{"role": "user", "content": "a b c"}]},
                 {"model": SMOL, "messages": [{"role": "user", "content": "x"}], "stream": True,
                  "stream_options": {"include_usage": True}, "max_tokens": 3}):
        resp = await client.post("/v1/chat/completions", json=body)
        usage = resp.json()["usage"] if not body.get("stream") else sse_events(resp.text)[-2][
            "usage"]
        usage_total += usage["completion_tokens"]
        prompt_total += usage["prompt_tokens"]
    after = await samples(client)
    model = (("model", SMOL),)
    assert after[("halo_generation_tokens_total", model)] == usage_total
    assert after[("halo_prompt_tokens_total", model)] == prompt_total
    assert after[("halo_time_to_first_token_seconds_count", model)] == 2
    assert after[("halo_e2e_request_latency_seconds_count", model)] == 2
    assert after[("halo_requests_total", (("model", SMOL), ("status", "ok")))] == 2
    assert after[("halo_requests_running", model)] == 0
    assert after[("halo_requests_waiting", model)] == 0


async def test_failed_requests_counted_by_status(client: httpx.AsyncClient) -> None:
    await client.post("/v1/chat/completions", json={
        "model": SMOL, "messages": [{"role": "user", "content": "FAIL:context_length_exceeded"}]})
    after = await samples(client)
    key = ("halo_requests_total", (("model", SMOL), ("status", "context_length_exceeded")))
    assert after[key] == 1
    assert after[("halo_requests_waiting", (("model", SMOL),))] == 0
