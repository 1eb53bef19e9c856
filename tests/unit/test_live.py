"""LiveStats: the web page's rates, counts and recent requests, on a fake clock."""

from __future__ import annotations

import pytest

from app.live import GENERATION_WINDOW, PREFILL_WINDOW, RECENT, Finished, LiveStats


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def record(model: str = "m", status: str = "ok", ttft: float | None = 0.5) -> Finished:
    return Finished(model=model, status=status, ended_at=1.0, ttft=ttft, queue=0.1,
                    prompt_tokens=10, generated_tokens=11, duration=1.5)


def test_generation_rate_over_a_stream_younger_than_the_window() -> None:
    clock = Clock()
    live = LiveStats(clock=clock)
    for _ in range(10):  # 10 tokens over 1 s
        live.generated("m", 1)
        clock.t += 0.1
    # the stream is 1 s old: measured over its age, not the whole window
    assert live.model("m")["generation_tokens_per_second"] == pytest.approx(10.0)
    assert live.model("m")["generation_tokens_total"] == 10


def test_generation_rate_decays_to_zero_after_the_window() -> None:
    clock = Clock()
    live = LiveStats(clock=clock)
    for _ in range(40):  # 10 tokens/s for 4 s
        live.generated("m", 1)
        clock.t += 0.1
    assert live.model("m")["generation_tokens_per_second"] == pytest.approx(10.0, rel=0.05)
    clock.t += GENERATION_WINDOW + 0.01
    assert live.model("m")["generation_tokens_per_second"] == 0.0


def test_prompt_rate_is_prefill_tokens_over_prefill_time() -> None:
    clock = Clock()
    live = LiveStats(clock=clock)
    assert live.model("m")["prompt_tokens_per_second"] is None
    live.prefilled("m", 300, 0.5)
    live.prefilled("m", 100, 0.5)
    assert live.model("m")["prompt_tokens_per_second"] == 400.0
    live.prefilled("m", 0, 0.1)  # fully cached prompt: nothing was computed
    assert live.model("m")["prompt_tokens_per_second"] == 400.0
    clock.t += PREFILL_WINDOW + 1
    assert live.model("m")["prompt_tokens_per_second"] is None


def test_running_and_waiting_follow_the_request() -> None:
    live = LiveStats()
    live.arrived("m")
    assert live.model("m")["requests_waiting"] == 1
    live.left("m", "waiting")
    live.started("m", 12)
    assert (live.model("m")["requests_waiting"], live.model("m")["requests_running"]) == (0, 1)
    live.left("m", "running")
    live.finished(record())
    out = live.model("m")
    assert out["requests_running"] == 0
    assert out["prompt_tokens_total"] == 12
    assert out["requests_total"] == 1


def test_recent_requests_newest_first_and_bounded() -> None:
    live = LiveStats()
    for i in range(RECENT + 5):
        live.finished(record(model=f"m{i}"))
    recent = live.recent()
    assert len(recent) == RECENT
    assert recent[0]["model"] == f"m{RECENT + 4}"
    first = recent[0]
    assert first["ttft_seconds"] == 0.5
    assert first["tokens_per_second"] == pytest.approx(10 / 1.0)  # 10 gaps in 1 s of decode
    assert LiveStats().recent() == []


def test_a_request_without_tokens_has_no_rate() -> None:
    live = LiveStats()
    live.finished(record(status="cancelled", ttft=None))
    assert live.recent()[0]["tokens_per_second"] is None
