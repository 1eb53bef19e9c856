"""Optional bearer-token auth, compared in constant time."""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import Request

from app.config import Settings
from app.errors import Unauthorized


def key_matches(presented: str, keys: list[str]) -> bool:
    """True if ``presented`` equals one of ``keys``; every key is compared (no early exit)."""
    given = presented.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode())
    return found


def check_api_key(keys: list[str], authorization: str | None,
                  x_api_key: str | None = None) -> None:
    """`Authorization: Bearer <key>`, or Anthropic's `x-api-key: <key>`."""
    if not keys:
        return
    if x_api_key and not authorization:
        if not key_matches(x_api_key.strip(), keys):
            raise Unauthorized("invalid API key")
        return
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    if not key_matches(token.strip(), keys):
        raise Unauthorized("invalid API key")


async def require_api_key(request: Request) -> None:
    """FastAPI dependency for every route but /health."""
    headers = request.headers
    check_api_key(request.app.state.halo.settings.api_keys, headers.get("authorization"),
                  headers.get("x-api-key"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_refusal(settings: Settings) -> str | None:
    """Why `halo serve` must not start with these settings (None: it may)."""
    if is_loopback(settings.host) or settings.api_keys or settings.insecure_no_auth:
        return None
    return (f"refusing to listen on {settings.host} without an API key: set --api-key "
            "(HALO_API_KEYS), bind 127.0.0.1, or pass --insecure-no-auth")
