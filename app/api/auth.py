"""Optional bearer-token auth, compared in constant time."""

from __future__ import annotations

import hmac

from fastapi import Request

from app.errors import Unauthorized


def key_matches(presented: str, keys: list[str]) -> bool:
    """True if ``presented`` equals one of ``keys``; every key is compared (no early exit)."""
    given = presented.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode())
    return found


def check_api_key(keys: list[str], authorization: str | None) -> None:
    if not keys:
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    if not key_matches(token.strip(), keys):
        raise Unauthorized("invalid API key")


async def require_api_key(request: Request) -> None:
    """FastAPI dependency for every route but /health."""
    check_api_key(request.app.state.halo.settings.api_keys, request.headers.get("authorization"))
