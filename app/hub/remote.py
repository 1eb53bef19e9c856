"""The one place that talks to the model hub, through `huggingface_hub` (pinned 1.33.0).

What the library gives us here: the endpoint and token handling (`HF_ENDPOINT`, `HF_TOKEN`, the
saved login), the repo listing with LFS hashes (`HfApi.model_info(files_metadata=True)`), the
resolve-URL HEAD that follows the Hub's redirects and reads `X-Repo-Commit` / `X-Linked-Etag` /
`X-Linked-Size` (`get_hf_file_metadata`), and a streamed GET with retries (`http_get`) that
resumes with a `Range` request from `resume_size`.

Why not `hf_hub_download`: in 1.33.0 it downloads into a process-unique
`<etag>.<uuid>.incomplete` file and deletes it on any failure (file_download.py,
`_download_to_tmp_and_move`, huggingface_hub PR #4228), so an interrupted pull restarts from zero in
the next process. We keep our own partial file and hand its size to `http_get` as `resume_size`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, cast

import httpx
from huggingface_hub import HfApi, get_hf_file_metadata, get_session, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.file_download import http_get
from huggingface_hub.utils._headers import build_hf_headers

from app.errors import HubError, HubNotFound
from app.hub.refs import RemoteFile

DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class Resolved:
    """Where a file's bytes are (after the Hub's redirect) and what they must be."""

    name: str
    location: str
    size: int
    etag: str | None
    commit: str | None


class HubClient:
    """A hub at `endpoint` (default $HF_ENDPOINT, else huggingface.co) with `token` (default the
    library's: $HF_TOKEN or the saved login)."""

    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        self.token = token
        self._api = HfApi(endpoint=self.endpoint, token=token)

    def list_files(self, repo: str, revision: str = "main") -> list[RemoteFile]:
        """Every file of the repo with its size and LFS sha256."""
        with _errors(repo):
            info = self._api.model_info(repo, revision=revision, files_metadata=True)
        out = []
        for s in info.siblings or []:
            size = s.lfs.size if s.lfs is not None else s.size
            out.append(RemoteFile(s.rfilename, size or 0, s.lfs.sha256 if s.lfs else None))
        return out

    def resolve(self, repo: str, name: str, revision: str = "main") -> Resolved:
        """HEAD the file's resolve URL (following the Hub's own redirects, not the CDN's)."""
        url = hf_hub_url(repo, name, revision=revision, endpoint=self.endpoint)
        with _errors(f"{repo}/{name}"):
            meta = get_hf_file_metadata(url, token=self.token, endpoint=self.endpoint,
                                        retry_on_errors=True)
        if meta.size is None:
            raise HubError(f"the hub did not say how large {repo}/{name} is")
        return Resolved(name, meta.location, meta.size, meta.etag, meta.commit_hash)

    def download(self, resolved: Resolved, out: BinaryIO, *, resume_size: int,
                 on_bytes: Callable[[int], None]) -> None:
        """Append the file's bytes from `resume_size` to `out` (positioned at its end)."""
        with _errors(resolved.name):
            http_get(resolved.location, out, resume_size=resume_size,
                     headers=build_hf_headers(token=self.token), expected_size=resolved.size,
                     displayed_filename=resolved.name,
                     tqdm_class=cast(Any, _progress_class(on_bytes)))

    def read_range(self, resolved: Resolved, start: int, stop: int) -> bytes:
        """Bytes [start, stop) of the file with one HTTP range request."""
        headers = build_hf_headers(token=self.token)
        headers["Range"] = f"bytes={start}-{stop - 1}"
        headers["Accept-Encoding"] = "identity"
        with _errors(resolved.name):
            response = get_session().get(resolved.location, headers=headers, timeout=60)
            response.raise_for_status()
        data = response.content
        if response.status_code == 200:  # the server ignored the range
            data = data[start:stop]
        return data


def _progress_class(on_bytes: Callable[[int], None]) -> type:
    """A stand-in for tqdm that http_get drives: it forwards each chunk's size to `on_bytes`."""

    class Progress:
        def __init__(self, **_: object) -> None:
            pass

        def __enter__(self) -> Progress:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def update(self, n: int = 1) -> None:
            on_bytes(n)

    return Progress


class _errors:
    """Map the library's and httpx's errors to halo's, naming `what` was asked for."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> Literal[False]:
        if exc is None:
            return False
        if isinstance(exc, GatedRepoError):
            raise HubError(f"{self.what} is gated: accept its license on the hub and set "
                           "HF_TOKEN") from exc
        if isinstance(exc, RepositoryNotFoundError | RemoteEntryNotFoundError |
                      RevisionNotFoundError):
            raise HubNotFound(f"{self.what} was not found on the hub") from exc
        if isinstance(exc, OfflineModeIsEnabled):
            raise HubError("HF_HUB_OFFLINE is set: the hub cannot be reached") from exc
        if isinstance(exc, HfHubHTTPError | httpx.HTTPStatusError):
            raise HubError(f"the hub refused {self.what}: {exc}") from exc
        if isinstance(exc, httpx.HTTPError):
            raise HubError(f"cannot reach the hub for {self.what}: {exc}") from exc
        return False
