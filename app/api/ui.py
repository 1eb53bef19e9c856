"""The web page: GET / and /ui/... from the static files in app/ui/ (no build step).

When the server has API keys, only the login form is served without one: index.html,
boot.js and style.css. The page's code (/ui/app/*.js), its configuration and all data need
the key, which boot.js sends as a bearer token when it fetches them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from app.api.deps import StateDep

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
PUBLIC = ("index.html", "boot.js", "style.css", "favicon.svg")
# the page's code, in load order (each file adds to the `Halo` namespace)
ASSETS = ("util.js", "markdown.js", "pool.js", "models.js", "live.js", "chat.js", "main.js")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
# Scripts only from this origin or the blob: URLs boot.js makes of the fetched code; no
# inline script or style, no other origin: model output can never become code.
CSP = ("default-src 'none'; script-src 'self' blob:; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

public = APIRouter(include_in_schema=False)
secured = APIRouter(include_in_schema=False)


def _file(path: Path) -> Response:
    return Response(path.read_bytes(), media_type=_TYPES[path.suffix], headers={
        "Cache-Control": "no-cache", "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


def _serve(name: str) -> Any:
    async def serve() -> Response:
        return _file(UI_DIR / name)
    return serve


public.add_api_route("/", _serve("index.html"), methods=["GET"])
public.add_api_route("/ui/", _serve("index.html"), methods=["GET"])
for _name in PUBLIC[1:]:
    public.add_api_route(f"/ui/{_name}", _serve(_name), methods=["GET"])


@public.get("/ui/auth")
async def auth(state: StateDep) -> dict[str, bool]:
    """Whether the page must ask for an API key (the login form's only question)."""
    return {"required": bool(state.settings.api_keys)}


def has_route(app: Starlette, method: str, path: str) -> bool:
    """Whether the app routes ``method path`` to an endpoint (asked of the router itself)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": "",
             "query_string": b"", "headers": []}
    return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)


@secured.get("/ui/config")
async def config(request: Request, state: StateDep) -> dict[str, Any]:
    """What the page needs to start: its code and which optional endpoints exist."""
    return {
        "assets": [f"/ui/app/{name}" for name in ASSETS],
        "features": {
            "pull": has_route(request.app, "POST", "/models/pull"),
            "fit": has_route(request.app, "POST", "/models/fit"),
        },
        "auth": bool(state.settings.api_keys),
        "version": request.app.version,
    }


@secured.get("/ui/app/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, f"no such file: /ui/app/{name}")
    return _file(UI_DIR / "app" / name)
