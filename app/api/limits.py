"""ASGI middleware refusing request bodies larger than a limit (413, OpenAI envelope)."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import anthropic_envelope, family


class BodyTooLarge(HTTPException):
    """Raised while reading the body; FastAPI re-raises HTTPExceptions to our handler."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body larger than {max_bytes} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(send, scope.get("path", ""))
                return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send, scope.get("path", ""))

    async def _reject(self, send: Send, path: str) -> None:
        message = f"request body larger than {self.max_bytes} bytes"
        envelope: dict[str, Any] = {"error": {
            "message": message, "type": "invalid_request_error", "param": None,
            "code": "request_too_large"}}
        kind = family(path)  # each protocol family gets its own envelope
        if kind == "anthropic":
            envelope = anthropic_envelope(413, message)
        elif kind == "ollama":
            envelope = {"error": message}
        body = json.dumps(envelope).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
