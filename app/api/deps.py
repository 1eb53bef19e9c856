"""FastAPI dependencies reading this app's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.state import AppState


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.halo
    return state


StateDep = Annotated[AppState, Depends(get_state)]
