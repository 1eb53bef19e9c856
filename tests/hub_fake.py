"""A small loopback stand-in for the Hugging Face Hub, for tests of app/hub.

It speaks the subset of the Hub's HTTP API that the real, unmodified `huggingface_hub` client
uses to list a repo and download its files:

- `GET /api/models/{repo}[/revision/{rev}]` (with `?blobs=true`): model info with `sha` and
  `siblings` (`rfilename`, `size`, `blobId`, `lfs: {sha256, size, pointerSize}`);
- `HEAD|GET /{repo}/resolve/{rev}/{file}`: a 302 to the "CDN" with `X-Repo-Commit`,
  `X-Linked-Etag`, `X-Linked-Size` and `ETag`, as the Hub answers for LFS files;
- `HEAD|GET /cdn/{repo}/{file}` on another host name (`localhost` instead of `127.0.0.1`, so the
  client treats it as a CDN like the real one): the bytes, with `Range` support (206 +
  `Content-Range`).

Unknown repos and files get 404 with the Hub's `X-Error-Code` header. Test knobs: `corrupt` (serve
one flipped byte while advertising the true sha256), `rate` (bytes per second, to interrupt a
transfer) and counters of the bytes served per file and of every request.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "4f1c2e7d9a0b3c5e6f708192a3b4c5d6e7f80912"
_CHUNK = 1 << 16


@dataclass
class HubFile:
    path: Path
    sha256: str
    size: int
    corrupt_at: int | None = None  # serve this byte flipped


@dataclass
class FakeHub:
    repos: dict[str, dict[str, HubFile]] = field(default_factory=dict)
    rate: float | None = None  # bytes per second for file bodies (None: as fast as possible)
    served: Counter[str] = field(default_factory=Counter)  # "repo/file" -> body bytes sent
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path, range
    port: int = 0
    sending: int = 0  # file bodies being sent now
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, repo: str, path: Path, name: str | None = None,
            sha256: str | None = None) -> HubFile:
        """Serve `path` as `name` in `repo`. `sha256` may be given for huge sparse header-only
        files (hashing a 48 GB hole takes minutes; only a pull would check it)."""
        if sha256 is None:
            digest = hashlib.sha256()
            with path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
            sha256 = digest.hexdigest()
        entry = HubFile(path, sha256, path.stat().st_size)
        self.repos.setdefault(repo, {})[name or path.name] = entry
        return entry

    def corrupt(self, repo: str, name: str, offset: int) -> None:
        self.repos[repo][name].corrupt_at = offset

    def bytes_served(self, repo: str, name: str) -> int:
        with self._lock:
            return self.served[f"{repo}/{name}"]

    def wait_idle(self, timeout: float = 30) -> None:
        """Until no body is being sent (a killed client's transfer ends at the next write)."""
        deadline = time.monotonic() + timeout
        while self.sending and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not self.sending, "the fake hub is still sending"

    def ranges_of(self, name: str) -> list[str | None]:
        with self._lock:
            return [r for m, p, r in self.requests if m == "GET" and p.endswith("/" + name)]


_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_CDN = re.compile(r"^/cdn/(?P<repo>[^/]+/[^/]+)/(?P<file>.+)$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._route(body=True)

        def do_HEAD(self) -> None:
            self._route(body=False)

        def _route(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            with hub._lock:
                hub.requests.append((self.command, path, self.headers.get("Range")))
            if m := _INFO.match(path):
                self._info(m["repo"], body)
            elif m := _RESOLVE.match(path):
                self._resolve(m["repo"], m["file"])
            elif m := _CDN.match(path):
                self._file(m["repo"], m["file"], body)
            else:
                self._error(404, "RepoNotFound", "not found")

        def _error(self, status: int, code: str, message: str) -> None:
            data = json.dumps({"error": message}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _info(self, repo: str, body: bool) -> None:
            files = hub.repos.get(repo)
            if files is None:
                self._error(404, "RepoNotFound", f"Repository {repo} not found")
                return
            siblings = [
                {"rfilename": name, "size": f.size, "blobId": f.sha256[:40],
                 "lfs": {"sha256": f.sha256, "size": f.size, "pointerSize": 134}}
                for name, f in sorted(files.items())
            ]
            data = json.dumps({"id": repo, "modelId": repo, "sha": COMMIT, "private": False,
                               "siblings": siblings, "tags": ["gguf"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _resolve(self, repo: str, name: str) -> None:
            entry = hub.repos.get(repo, {}).get(name)
            if entry is None:
                code = "EntryNotFound" if repo in hub.repos else "RepoNotFound"
                self._error(404, code, f"{repo}/{name} not found")
                return
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{hub.port}/cdn/{repo}/{name}")
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("X-Linked-Etag", f'"{entry.sha256}"')
            self.send_header("X-Linked-Size", str(entry.size))
            self.send_header("ETag", f'"{entry.sha256[:40]}"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _file(self, repo: str, name: str, body: bool) -> None:
            entry = hub.repos.get(repo, {}).get(name)
            if entry is None:
                self._error(404, "EntryNotFound", f"{repo}/{name} not found")
                return
            start, end = 0, entry.size - 1
            header = self.headers.get("Range")
            m = _RANGE.match(header or "")
            partial = m is not None and (m[1] or m[2]) != ""
            if m is not None and partial:
                if m[1]:
                    start = int(m[1])
                    end = min(int(m[2]), end) if m[2] else end
                else:
                    start = max(0, entry.size - int(m[2]))
                if start >= entry.size or start > end:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{entry.size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            self.send_response(206 if partial else 200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{entry.sha256}"')
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end - start + 1))
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end}/{entry.size}")
            self.end_headers()
            if body:
                self._send_bytes(f"{repo}/{name}", entry, start, end + 1)

        def _send_bytes(self, key: str, entry: HubFile, start: int, stop: int) -> None:
            with hub._lock:
                hub.sending += 1
            try:
                self._send_range(key, entry, start, stop)
            finally:
                with hub._lock:
                    hub.sending -= 1

        def _send_range(self, key: str, entry: HubFile, start: int, stop: int) -> None:
            began = time.monotonic()
            sent = 0
            with entry.path.open("rb") as f:
                f.seek(start)
                pos = start
                while pos < stop:
                    chunk = bytearray(f.read(min(_CHUNK, stop - pos)))
                    if not chunk:
                        return
                    if entry.corrupt_at is not None and pos <= entry.corrupt_at < pos + len(chunk):
                        chunk[entry.corrupt_at - pos] ^= 0xFF
                    try:
                        self.wfile.write(chunk)
                    except OSError:  # the client went away
                        return
                    pos += len(chunk)
                    sent += len(chunk)
                    with hub._lock:
                        hub.served[key] += len(chunk)
                    if hub.rate:
                        ahead = sent / hub.rate - (time.monotonic() - began)
                        if ahead > 0:
                            time.sleep(ahead)

    return Handler


@contextmanager
def fake_hub(hub: FakeHub | None = None) -> Iterator[FakeHub]:
    """Run a FakeHub on a free loopback port for the duration of the block."""
    hub = hub or FakeHub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    server.daemon_threads = True
    hub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
