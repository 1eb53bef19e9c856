"""FastAPI dependencies reading this app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.state import AppState


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a sync dependency in its thread pool, a thread hop per request
    # (1-2 ms of a streaming request's time to first token on a busy 2-core machine)
    state: AppState = request.app.state.halo
    return state


StateDep = Annotated[AppState, Depends(get_state)]
