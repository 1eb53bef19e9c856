"""The benchmark's paired rows: each server against llama-server round by round."""

from __future__ import annotations

from typing import Any

from bench import run, turns


def _record(name: str, aggregates: list[float], ttfts: list[float | None]) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "stream_tokens_per_second_mean": 1.0, "aggregate_tokens_per_second": 1.0,
        "ttft_p50": 0.1, "ttft_p95": 0.2, "no_finish_reason": 0, "requests": len(ttfts),
        "errors": 0, "tokens_per_request_min": 128, "tokens_per_request_max": 128,
        "token_count_source": ["usage"], "round_aggregates": aggregates,
        "round_ttft_p50": ttfts,
    }
    return {"name": name, "status": "ok", "levels": {"1": {"summary": summary}}}


def test_ttft_rounds_pair_up_and_skip_missing_rounds() -> None:
    halo = _record("halo", [60, 70, 80], [0.150, 0.100, None])["levels"]["1"]["summary"]
    ls = _record("llama-server", [60, 50, 80], [0.120, 0.130, 0.110])["levels"]["1"]["summary"]
    diffs = turns.paired_ttft_differences(halo, ls)
    assert [round(d * 1000) for d in diffs] == [30, -30]
    assert turns.paired_ms_cell(diffs) == "+0 (-30 to +30, 2 rounds)"
    assert turns.paired_ms_cell([]) == "-"
    assert turns.paired_ratios(halo, ls) == [1.0, 1.4, 1.0]


def test_table_has_a_paired_ttft_row_per_level() -> None:
    records = [_record("halo", [60, 70], [0.150, 0.100]),
               _record("llama-server", [60, 50], [0.120, 0.103])]
    header, rows = run.table_rows(records, [1])
    assert header[-1] == "halo/ls"
    paired = [r for r in rows if r[1].startswith("TTFT p50, x - ls")]
    assert len(paired) == 1
    assert paired[0][-1] == "+14 (-3 to +30, 2 rounds)"
