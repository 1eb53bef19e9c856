"""No route runs in FastAPI's thread pool: a sync endpoint or dependency costs every request a
hop to a pool thread and back (measured 1.6 ms of a streaming chat request's time to first
token on a 2-core machine whose cores the decode keeps busy)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.config import Settings
from app.factory import create_app
from app.hardware.probe import ProbeReport
from tests.api.fake_engine import FakeFactory


def _calls(dependant: Dependant) -> Iterator[Any]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def _routes(routes: list[Any]) -> Iterator[tuple[APIRoute, list[Any]]]:
    """Each API route with the dependencies its router was included with (FastAPI >= 0.165
    keeps an included router as one lazy route holding the original)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route, []
        inner = getattr(route, "original_router", None)
        if inner is not None:
            extra = [d.dependency for d in route.include_context.dependencies]
            for api_route, deps in _routes(inner.routes):
                yield api_route, deps + extra


def test_every_endpoint_and_dependency_is_async(models_dir: Path,
                                                probe_report: ProbeReport) -> None:
    app = create_app(Settings(models_dir=models_dir), engine_factory=FakeFactory(),
                     probe_report=probe_report)
    routes = list(_routes(app.routes))
    assert len(routes) >= 30  # the walk found them all (the chat, Ollama, admin, UI routes)
    sync = sorted({f"{r.path}: {getattr(call, '__qualname__', call)}"
                   for r, deps in routes for call in (r.endpoint, *_calls(r.dependant), *deps)
                   if not inspect.iscoroutinefunction(call)})
    assert sync == []
