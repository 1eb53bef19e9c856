"""Stored Responses API responses, for `previous_response_id` chains and GET/DELETE.

In memory, bounded in count and age (least recently stored first out), one per app.
A stored entry keeps the whole conversation as chat messages, so a chained request
renders the same prompt prefix and the worker reuses its KV cache.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StoredResponse:
    response: dict[str, Any]  # the response object as returned
    messages: list[dict[str, Any]]  # the conversation up to and including this reply
    model: str
    stored_at: float


class ResponseStore:
    def __init__(self, max_entries: int = 1000, ttl_seconds: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._items: OrderedDict[str, StoredResponse] = OrderedDict()

    def __len__(self) -> int:
        self._expire()
        return len(self._items)

    def _expire(self) -> None:
        cutoff = self._clock() - self.ttl_seconds
        while self._items:
            key, oldest = next(iter(self._items.items()))
            if oldest.stored_at > cutoff:
                break
            del self._items[key]

    def put(self, response: dict[str, Any], messages: list[dict[str, Any]],
            model: str) -> None:
        self._expire()
        key = str(response["id"])
        self._items.pop(key, None)
        self._items[key] = StoredResponse(response, messages, model, self._clock())
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def get(self, response_id: str) -> StoredResponse | None:
        self._expire()
        return self._items.get(response_id)

    def delete(self, response_id: str) -> bool:
        self._expire()
        return self._items.pop(response_id, None) is not None
