"""Hostile input against the real server: schema-driven fuzz of every route, a hand list of
hostile bodies, and generated hostile JSON schemas as response_format and tool parameters.

Zero 5xx, every error in the envelope, no worker death, another stream undisturbed, the
server healthy afterwards.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.server import Server
from tests.faults.conftest import SMOL, StreamResult, envelope_ok, running
from tests.faults.schema_strategy import SchemaStrategies

GEMMA = "gemma3-270m"  # 262k-token vocabulary: each grammar pass costs ~5x SmolLM2's
MODELS = [SMOL, GEMMA]
# operations that change the catalog, load/unload or reach the hub: fuzzed with made-up model
# names only (a real one would unload the guard stream's model or delete a test file)
ADMIN = ("/models/", "/api/pull", "/api/delete")
TOKEN_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# what each generating route is told so that a generated request stays cheap
DEFAULT_CAP: dict[str, tuple[str, Any]] = {
    "/v1/chat/completions": ("max_tokens", 4), "/v1/completions": ("max_tokens", 4),
    "/v1/responses": ("max_output_tokens", 4), "/v1/messages": ("max_tokens", 4),
    "/api/chat": ("options", {"num_predict": 4}), "/api/generate": ("options", {"num_predict": 4}),
}
REQUEST_TIMEOUT = 60
MAX_GUARD_PAUSE = 8.0  # s; an ambiguous pattern grammar used to stall it 11.8 s
FUZZ = settings(max_examples=10, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


class Tally:
    """Counts of what the server answered."""

    def __init__(self) -> None:
        self.requests = 0
        self.by_status: dict[int, int] = {}
        self.bad: list[str] = []

    def check(self, what: str, resp: httpx.Response) -> None:
        self.requests += 1
        self.by_status[resp.status_code] = self.by_status.get(resp.status_code, 0) + 1
        if resp.status_code >= 500:
            self.bad.append(f"{what}: {resp.status_code} {resp.text[:300]}")
        elif resp.status_code >= 400 and not envelope_ok(resp):
            self.bad.append(f"{what}: {resp.status_code} outside the envelope: {resp.text[:200]}")
        elif resp.status_code == 200 and "worker_crashed" in resp.text:
            self.bad.append(f"{what}: ended by a worker crash")

    @property
    def fives(self) -> int:
        return sum(n for s, n in self.by_status.items() if s >= 500)


@pytest.fixture(scope="module")
def tally() -> Tally:
    return Tally()


@pytest.fixture(scope="module")
def guard(server: Server, tally: Tally) -> Iterator[dict[str, Any]]:
    """A long stream running through the whole module, and the worker pid to compare."""
    httpx.post(server.url + "/models/load", json={"model": SMOL}, timeout=120).raise_for_status()
    info = running(server)
    assert info is not None
    state: dict[str, Any] = {"pid": info["pid"], "streams": [], "stop": False}

    def long_streams() -> None:
        body = {"model": SMOL, "stream": True, "max_tokens": 100_000, "ignore_eos": True,
                "messages": [{"role": "user", "content": "Write forever."}]}
        while not state["stop"]:  # one stream after another until the module ends
            out = StreamResult()
            state["streams"].append(out)
            try:
                with httpx.stream("POST", server.base_url + "/chat/completions", json=body,
                                  timeout=300) as resp:
                    for line in resp.iter_lines():
                        out.feed(line, time.monotonic())
                        if state["stop"]:
                            return
            except (httpx.HTTPError, ValueError) as exc:  # reported by the test, not here
                out.error = {"message": f"guard stream broke: {exc!r}"}
                return

    thread = threading.Thread(target=long_streams, daemon=True)
    thread.start()
    yield state
    state["stop"] = True
    thread.join(30)


def _post(server: Server, path: str, body: bytes, headers: dict[str, str] | None = None,
          method: str = "POST") -> httpx.Response:
    return _request(method, server.url + path, body,
                    headers or {"content-type": "application/json"})


def _request(method: str, url: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
    """The whole reply, within REQUEST_TIMEOUT in all (httpx's read timeout is per chunk, so
    a reply that keeps trickling would stall the suite instead of failing it).

    A GET that answers with an event stream is read to its first event, then the client
    hangs up: GET /events never ends by design (a snapshot every 0.5 s for the web page).
    """
    deadline = time.monotonic() + REQUEST_TIMEOUT
    with httpx.stream(method, url, content=body, headers=headers,
                      timeout=REQUEST_TIMEOUT) as resp:
        sse = resp.headers.get("content-type", "").startswith("text/event-stream")
        if method == "GET" and sse:
            line = ""
            for line in resp.iter_lines():
                if line.startswith("data:") or time.monotonic() > deadline:
                    break
            return httpx.Response(resp.status_code, headers={"content-type": "text/plain"},
                                  content=line.encode(), request=resp.request)
        raw = bytearray()
        for chunk in resp.iter_raw():
            raw += chunk
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {url}: reply not finished after "
                                     f"{REQUEST_TIMEOUT} s")
        return httpx.Response(resp.status_code, headers=resp.headers, content=bytes(raw),
                              request=resp.request)


def _tame(path: str, body: Any, model: str | None) -> Any:
    """Keep generated requests cheap: real model ids (most of the time), few tokens."""
    if not isinstance(body, dict):
        return body
    if model is not None and not path.startswith(ADMIN) and "model" in body:
        body["model"] = model
    for key in TOKEN_CAPS:
        if isinstance(body.get(key), int) and body[key] > 4:
            body[key] = 4
    if isinstance(body.get("options"), dict):
        body["options"]["num_predict"] = 4
    if path in DEFAULT_CAP:
        key, value = DEFAULT_CAP[path]
        if key == "options" and not isinstance(body.get("options"), dict):
            body["options"] = dict(value)
        elif key != "options" and body.get(key) is None:
            body[key] = value
    body.pop("ignore_eos", None)
    return body


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    out = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            content = (op.get("requestBody") or {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            out.append((path, method.upper(), schema))
    return out


def _fuzzer(server: Server, tally: Tally, doc: dict[str, Any], path: str, method: str,
            schema: dict[str, Any] | None) -> Callable[[], None]:
    """A hypothesis test of one operation: bodies from its schema, ids for path params."""
    if schema is None:
        names = st.text(max_size=40)
        if method == "GET":
            names = names | st.sampled_from(MODELS)

        @FUZZ
        @given(names)
        def probe_path(name: str) -> None:
            url = re.sub(r"\{[^}]+\}", quote(name, safe="") or "x", path)
            tally.check(f"{method} {path}", _request(method, server.url + url))
        return probe_path

    @FUZZ
    @given(SchemaStrategies(doc).for_schema(schema), st.sampled_from([*MODELS, None]))
    def probe_body(body: Any, model: str | None) -> None:
        data = json.dumps(_tame(path, body, model)).encode()
        tally.check(f"{method} {path}", _post(server, path, data, method=method))
    return probe_body


def test_openapi_fuzz(server: Server, guard: dict[str, Any], tally: Tally,
                      figures: Callable[[str], None]) -> None:
    doc = httpx.get(server.url + "/openapi.json", timeout=10).json()
    ops = _operations(doc)
    assert any(p == "/v1/chat/completions" for p, _, _ in ops)
    t0 = time.monotonic()
    fuzzed = 0
    for path, method, schema in ops:
        _fuzzer(server, tally, doc, path, method, schema)()
        fuzzed += 1
    assert not tally.bad, tally.bad[:5]
    figures(f"fuzz (OpenAPI): {fuzzed} operations, {tally.requests} requests so far, "
            f"statuses {dict(sorted(tally.by_status.items()))}, 5xx: {tally.fives}, "
            f"{time.monotonic() - t0:.1f} s")


DEEP = 100_000


def _hostile_bodies() -> list[tuple[str, str, bytes, dict[str, str]]]:
    json_ct = {"content-type": "application/json"}

    def chat(**extra: Any) -> bytes:
        return json.dumps({"model": SMOL, "max_tokens": 4,
                           "messages": [{"role": "user", "content": "hi"}], **extra}).encode()

    deep_list = b'{"model": "smollm2", "messages": ' + b"[" * DEEP + b"]" * DEEP + b"}"
    deep_obj = (b'{"model": "smollm2", "max_tokens": 4, "messages": [{"role": "user", '
                b'"content": "hi"}], "tools": [{"type": "function", "function": {"name": "f", '
                b'"parameters": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}}]}")
    nested_schema: Any = {"type": "string"}
    for _ in range(200):
        nested_schema = {"type": "object", "properties": {"x": nested_schema}}
    return [
        ("deep list nesting", "/v1/chat/completions", deep_list, json_ct),
        ("deep object nesting", "/v1/chat/completions", deep_obj, json_ct),
        ("deep schema", "/v1/chat/completions", chat(response_format={
            "type": "json_schema", "json_schema": {"name": "d", "schema": nested_schema}}),
         json_ct),
        ("huge int", "/v1/chat/completions", chat()[:-1] + b', "seed": ' + b"9" * 5000 + b"}",
         json_ct),
        ("huge float", "/v1/chat/completions", chat()[:-1] + b', "temperature": 1e999}',
         json_ct),
        ("huge max_tokens (stream)", "/v1/completions",
         b'{"model": "smollm2", "prompt": "x", "stream": true, "max_tokens": 1'
         + b"0" * 400 + b"}", json_ct),
        ("NaN", "/v1/chat/completions", chat()[:-1] + b', "top_p": NaN}', json_ct),
        ("NUL in content", "/v1/chat/completions", chat(messages=[
            {"role": "user", "content": "a\u0000b\u0000"}]), json_ct),
        ("NUL in prompt", "/v1/completions",
         json.dumps({"model": SMOL, "prompt": "\u0000", "max_tokens": 4}).encode(), json_ct),
        ("NUL in stop", "/v1/chat/completions", chat(stop=["\u0000"]), json_ct),
        ("lone surrogate", "/v1/chat/completions",
         chat(messages=[{"role": "user", "content": "\ud83d"}]), json_ct),
        ("lone surrogate key", "/v1/chat/completions", chat(logit_bias={"\udc00": 1}),
         json_ct),
        ("surrogate in tool name", "/v1/chat/completions", chat(tools=[
            {"type": "function", "function": {"name": "\udfff"}}]), json_ct),
        ("invalid utf-8", "/v1/chat/completions",
         b'{"model": "smollm2", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
         json_ct),
        ("text/plain", "/v1/chat/completions", chat(), {"content-type": "text/plain"}),
        ("form", "/v1/chat/completions", b"model=smollm2&messages=hi",
         {"content-type": "application/x-www-form-urlencoded"}),
        ("multipart junk", "/v1/completions", b"--x\r\n\r\n--x--",
         {"content-type": "multipart/form-data; boundary=x"}),
        ("no content type", "/v1/chat/completions", chat(), {}),
        ("over-limit body", "/v1/chat/completions",
         chat(messages=[{"role": "user", "content": "x" * (5 << 20)}]), json_ct),
        ("empty body", "/v1/chat/completions", b"", json_ct),
        ("top-level array", "/v1/completions", b"[1, 2, 3]", json_ct),
        ("prompt empty", "/v1/completions",
         json.dumps({"model": SMOL, "prompt": ""}).encode(), json_ct),
        ("prompt [\"\"]", "/v1/completions",
         json.dumps({"model": SMOL, "prompt": [""]}).encode(), json_ct),
        ("superscript bias", "/v1/chat/completions", chat(logit_bias={"\u00b2": 1}), json_ct),
        ("5000-digit bias", "/v1/chat/completions", chat(logit_bias={"1" * 5000: 1}), json_ct),
        ("bias outside vocab", "/v1/chat/completions", chat(logit_bias={"4000000000": 1}),
         json_ct),
        ("nulls", "/v1/chat/completions", chat(temperature=None, top_p=None, n=None,
                                               stream=None, logprobs=None, stop=None,
                                               presence_penalty=None), json_ct),
        ("n too big", "/v1/chat/completions", chat(n=16), json_ct),
        ("ignore_eos + grammar", "/v1/chat/completions", chat(
            ignore_eos=True, max_tokens=24, response_format={"type": "json_schema",
                                                             "json_schema": {"name": "b",
                                                             "schema": {"enum": ["a"]}}}),
         json_ct),
        ("load unknown", "/models/load", b'{"model": "../../etc/passwd"}', json_ct),
        ("unload junk", "/models/unload", b'{"model": 5}', json_ct),
    ]


def _raw_requests() -> list[tuple[str, bytes]]:
    """Requests no well-behaved client library would send."""
    body = b'{"model": "smollm2", "messages": [{"role": "user", "content": "hi"}]}'
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    return [
        ("lying content-length", head + b"content-length: 99999999999\r\n\r\n" + body),
        ("negative content-length", head + b"content-length: -5\r\n\r\n" + body),
        ("garbage chunked", head + b"transfer-encoding: chunked\r\n\r\nzz\r\n" + body),
    ]


def _raw_status(server: Server, raw: bytes) -> int:
    """Send raw bytes, return the status code of the reply (0 if the server hung up)."""
    port = httpx.URL(server.url).port
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    parts = reply.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def _first_bytes(server: Server, path: str, body: bytes,
                 headers: dict[str, str]) -> httpx.Response:
    """Status and first SSE event of a stream, then hang up (the server must cope)."""
    with httpx.stream("POST", server.url + path, content=body, headers=headers,
                      timeout=120) as resp:
        for line in resp.iter_lines():
            if line.startswith("data:"):
                break
        return httpx.Response(resp.status_code, headers=resp.headers, content=line.encode())


def test_hostile_bodies(server: Server, guard: dict[str, Any], tally: Tally,
                        figures: Callable[[str], None]) -> None:
    t0 = time.monotonic()
    before = tally.requests
    for what, path, body, headers in _hostile_bodies():
        try:
            resp = _first_bytes(server, path, body, headers) if "(stream)" in what else _post(
                server, path, body, headers)
        except httpx.TransportError as exc:  # the server may close on an over-limit body
            if what != "over-limit body":
                raise AssertionError(what) from exc
            continue
        tally.check(what, resp)
        assert resp.status_code < 500, (what, resp.text[:300])
    for what, raw in _raw_requests():
        status = _raw_status(server, raw)
        tally.by_status[status] = tally.by_status.get(status, 0) + 1
        tally.requests += 1
        assert 400 <= status < 500, (what, status)
    assert not tally.bad, tally.bad[:5]
    info = running(server)
    assert info is not None
    assert info["pid"] == guard["pid"], "a worker died"
    figures(f"hostile bodies: {tally.requests - before} requests, 5xx: {tally.fives}, "
            f"{time.monotonic() - t0:.1f} s")


def _hostile_schemas() -> st.SearchStrategy[Any]:
    leaf = st.one_of(
        st.builds(lambda lo, hi: {"type": "string", "pattern": f"^[{lo}-{hi}]+$"},
                  st.sampled_from("zZ9~"), st.sampled_from("aA0 ")),
        st.builds(lambda c: {"enum": [c]}, st.characters(max_codepoint=0x1F)),
        st.builds(lambda c: {"const": c}, st.characters(max_codepoint=0x1F)),
        st.builds(lambda n: {"type": "string", "maxLength": n},
                  st.sampled_from([1000, 1001, 10**5, 10**9, 2**63])),
        st.builds(lambda n: {"type": "string", "minLength": n}, st.sampled_from([1000, 10**6])),
        st.builds(lambda lo, hi: {"type": "string", "minLength": lo, "maxLength": hi},
                  st.integers(0, 50), st.integers(0, 10)),
        st.builds(lambda lo, hi: {"type": "array", "minItems": lo, "maxItems": hi},
                  st.integers(0, 200), st.integers(0, 200)),
        st.builds(lambda lo, hi: {"type": "integer", "minimum": lo, "maximum": hi},
                  st.integers(-10**20, 10**20), st.integers(-10**20, 10**20)),
        st.builds(lambda n, m: {"type": "string", "pattern": f"^(a{{{n}}}){{{m}}}$"},
                  st.sampled_from([2, 100, 101, 99999]), st.sampled_from([1, 100, 5000])),
        st.builds(lambda p: {"type": "string", "pattern": p}, st.sampled_from([
            "^\\u0000$", "^[^\\x00-\\U0010FFFF]$", "^(a?){100}$", "^((a|aa)*)*b$",
            "^" + "(" * 300 + "a" + ")" * 300 + "$", "^a{0,100}a{0,100}$", "^[\\ud800]$",
            "^(?=x)$", "[", "^a{2,1}$"])),
        st.just({"type": "object", "properties": {}, "required": ["missing"],
                 "additionalProperties": False}),
        st.just({"anyOf": []}),
        st.just({"type": []}),
        st.just({"$ref": "#/$defs/loop", "$defs": {"loop": {"$ref": "#/$defs/loop"}}}),
    )

    def nest(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.builds(lambda s: {"type": "object", "properties": {"k": s}, "required": ["k"]},
                      inner),
            st.builds(lambda s: {"type": "array", "items": s, "minItems": 1}, inner),
            st.builds(lambda s, t: {"anyOf": [s, t]}, inner, inner),
        )

    return st.recursive(leaf, nest, max_leaves=4)


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(schema=_hostile_schemas(), as_tool=st.booleans(), stream=st.booleans())
def _schema_case(server: Server, tally: Tally, schema: Any, as_tool: bool, stream: bool) -> None:
    _send_schema(server, tally, schema, as_tool, stream)


def _send_schema(server: Server, tally: Tally, schema: Any, as_tool: bool, stream: bool,
                 model: str = SMOL) -> None:
    body: dict[str, Any] = {"model": model, "max_tokens": 6, "stream": stream,
                            "messages": [{"role": "user", "content": "Answer in JSON."}]}
    if as_tool:
        body["tools"] = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
        body["tool_choice"] = "required"
    else:
        body["response_format"] = {"type": "json_schema",
                                   "json_schema": {"name": "h", "schema": schema}}
    resp = _post(server, "/v1/chat/completions", json.dumps(body).encode())
    tally.check(f"schema {'tool' if as_tool else 'response_format'} ({model}) "
                f"{json.dumps(schema)[:80]}", resp)


# the cases of issue 13 that killed or stalled a worker, always sent (besides generated ones)
KNOWN_KILLERS: list[Any] = [
    {"enum": ["\u0000"]}, {"enum": ["\u0001"]}, {"const": "\u001f"},
    {"type": "string", "pattern": "^[z-a]$"}, {"type": "string", "maxLength": 100_000},
    {"type": "string", "pattern": "^a{1000000}$"}, {"type": "string", "pattern": "^(a?){100}$"},
    {"type": "string", "pattern": "^(x{99}){99}$"}, {"type": "array", "minItems": 5, "maxItems": 2},
    {"type": "integer", "minimum": 10, "maximum": 5}, {"type": "string", "maxLength": 1000},
]


def _gaps(streams: list[StreamResult], since: float) -> float:
    """Longest pause between two events of the guard streams after `since`."""
    times = sorted(t for s in streams for t in s.times if t >= since)
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def test_hostile_schemas(server: Server, guard: dict[str, Any], tally: Tally,
                         figures: Callable[[str], None]) -> None:
    httpx.post(server.url + "/models/load", json={"model": GEMMA},
               timeout=120).raise_for_status()
    gemma = running(server, GEMMA)
    assert gemma is not None
    t0 = time.monotonic()
    before, fives = tally.requests, tally.fives
    for schema in KNOWN_KILLERS:
        for as_tool in (False, True):
            _send_schema(server, tally, schema, as_tool, False)
        _send_schema(server, tally, schema, False, True, model=GEMMA)
    _schema_case(server, tally)
    assert not tally.bad, tally.bad[:5]
    info = running(server)
    assert info is not None
    assert info["pid"] == guard["pid"], "a worker died"
    gemma_now = running(server, GEMMA)
    assert gemma_now is not None
    assert gemma_now["pid"] == gemma["pid"], "gemma's worker died"
    streams: list[StreamResult] = guard["streams"]
    assert all(s.error is None for s in streams), [s.error for s in streams]
    assert all(s.finish_reason == "length" for s in streams[:-1])
    chunks = sum(s.chunks for s in streams)
    assert chunks > 0
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200
    gap = _gaps(streams, t0)
    assert gap < MAX_GUARD_PAUSE, f"the guard stream stalled {gap:.1f} s"
    figures(f"hostile schemas: {tally.requests - before} requests (response_format and "
            f"tool parameters; the known ones also streamed to {GEMMA}), "
            f"5xx: {tally.fives - fives}, {time.monotonic() - t0:.1f} s, "
            f"longest pause of the guard stream meanwhile {gap:.2f} s; "
            f"total fuzz requests {tally.requests}, 5xx {tally.fives}, worker deaths 0, "
            f"guard streams undisturbed ({len(streams)} streams, {chunks} chunks)")
