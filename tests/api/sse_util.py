"""Parse an SSE body the way OpenAI clients do."""

from __future__ import annotations

import json
from typing import Any


def sse_events(body: str) -> list[Any]:
    """Decoded `data:` payloads in order; the literal [DONE] stays a string."""
    out: list[Any] = []
    for line in body.splitlines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out
