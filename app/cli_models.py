"""`halo pull | fit | ls | rm`: models from the hub and on disk.

When a halo server answers (`--server`, default http://HOST:PORT of the settings), `fit` and
`pull` use its budget and the memory its loaded models hold, `ls` shows which are loaded, and
`rm` asks it to remove the model (so a loaded one is unloaded first with `--force`). Without a
server they work on the models dir alone, with the budget from the local probe.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.cli import _settings
from app.config import Settings
from app.errors import HaloError


@dataclass(frozen=True)
class ServerView:
    url: str
    budget: int
    reserved: dict[str, int]  # model id -> bytes held now
    status: dict[str, str]  # model id -> unloaded | loading | loaded | ...


def _server_url(settings: Settings, args: argparse.Namespace) -> str:
    given: str | None = getattr(args, "server", None)
    return (given or f"http://{settings.host}:{settings.port}").rstrip("/")


def _headers(settings: Settings) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.api_keys[0]}"} if settings.api_keys else {}


def _server(settings: Settings, args: argparse.Namespace) -> ServerView | None:
    url = _server_url(settings, args)
    try:
        r = httpx.get(url + "/system", headers=_headers(settings), timeout=2)
        r.raise_for_status()
        memory = r.json()["memory"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    ledger = memory.get("ledger", [])
    return ServerView(url, int(memory["budget_bytes"]),
                      {m["model"]: int(m["reserved_bytes"]) for m in ledger},
                      {m["model"]: str(m["status"]) for m in ledger})


def _fit_context(settings: Settings, args: argparse.Namespace) -> tuple[Any, int, dict[str, int]]:
    """(estimate_for, budget, loaded) from a running server, else from the local probe."""
    from app.factory import estimate_entry, run_probe

    report = run_probe(settings)
    view = _server(settings, args)
    budget = view.budget if view else report.pool.budget_bytes
    loaded = view.reserved if view else {}
    return (lambda entry: estimate_entry(report.choice, entry)), budget, loaded


def _defaults(settings: Settings) -> Any:
    from app.catalog.catalog import Defaults

    return Defaults(settings.default_n_ctx, settings.default_parallel, settings.default_ttl,
                    tuple(settings.nodes))


def fit(args: argparse.Namespace) -> int:
    from app.hub.fit import check_fit
    from app.hub.refs import parse_ref, select
    from app.hub.remote import HubClient

    settings = _settings(args)
    try:
        estimate_for, budget, loaded = _fit_context(settings, args)
        hub = HubClient()
        ref = parse_ref(args.model, args.filename)
        selection = select(ref, hub.list_files(ref.repo, ref.revision))
        report = check_fit(hub, selection, models_dir=settings.models_dir,
                           models_file=settings.models_file_path, defaults=_defaults(settings),
                           estimate_for=estimate_for, budget=budget, loaded=loaded)
    except HaloError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(report.describe())
        print(f"(read {report.header_bytes / 2**20:.1f} MiB of header; the download is "
              f"{report.file_bytes / 2**30:.2f} GiB)")
    return 2 if report.verdict == "never" else 0


def pull(args: argparse.Namespace) -> int:
    from app.catalog.models_toml import load_models_file
    from app.hub.fit import check_fit
    from app.hub.progress import ProgressPrinter
    from app.hub.pull import disk_free, execute, plan_for
    from app.hub.refs import parse_ref, select
    from app.hub.remote import HubClient

    settings = _settings(args)
    if args.all:
        configs = load_models_file(settings.models_file_path)
        targets = [(c.source, None) for c in configs.values() if c.source]
        if not targets:
            print(f"no entry of {settings.models_file_path} has a source", file=sys.stderr)
            return 0
    else:
        targets = [(args.model, args.filename)]
    tty = sys.stderr.isatty() and not args.json
    printer = ProgressPrinter(sys.stderr if tty else sys.stdout, tty=tty)
    hub = HubClient()
    failed = 0
    for model, filename in targets:
        try:
            ref = parse_ref(model, filename)
            selection = select(ref, hub.list_files(ref.repo, ref.revision))
            plan = plan_for(selection, settings.models_dir, disk_free)
            if plan.todo:
                estimate_for, budget, loaded = _fit_context(settings, args)
                report = check_fit(hub, selection, models_dir=settings.models_dir,
                                   models_file=settings.models_file_path,
                                   defaults=_defaults(settings), estimate_for=estimate_for,
                                   budget=budget, loaded=loaded)
                print(report.describe(), file=sys.stderr)
                if report.verdict == "never" and not args.yes and not _confirm():
                    print("not pulled (pass --yes to pull anyway)", file=sys.stderr)
                    failed += 1
                    continue
            execute(hub, plan, printer)
            _poke(settings, args)
        except HaloError as exc:
            printer.finish_line()
            print(f"error: {exc.message}", file=sys.stderr)
            failed += 1
        except KeyboardInterrupt:
            printer.finish_line()
            print("interrupted: the partial download is kept; pull again to resume",
                  file=sys.stderr)
            return 130
    return 1 if failed else 0


def _poke(settings: Settings, args: argparse.Namespace) -> None:
    """Ask a running server to rescan now (it would within catalog_refresh_seconds anyway)."""
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(_server_url(settings, args) + "/v1/models", headers=_headers(settings),
                  timeout=5)


def _confirm() -> bool:
    if not sys.stdin.isatty():
        return False
    return input("It will never fit. Download anyway? [y/N] ").strip().lower() in ("y", "yes")


def ls(args: argparse.Namespace) -> int:
    from app.catalog.catalog import scan
    from app.hub.refs import label_of

    settings = _settings(args)
    catalog = scan(settings.models_dir, settings.models_file_path, _defaults(settings))
    view = _server(settings, args)
    rows: list[dict[str, Any]] = []
    for e in catalog:
        rows.append({
            "id": e.id, "size_bytes": e.size_bytes,
            "quant": label_of(e.path.name.removesuffix(".gguf").split("-00001-of-")[0]),
            "source": e.source or "local file", "mmproj": e.mmproj.name if e.mmproj else None,
            "status": view.status.get(e.id, "unloaded") if view else None,
            "path": str(e.path)})
    if args.json:
        print(json.dumps({"models": rows, "server": view.url if view else None}, indent=2))
        return 0
    for r in rows:
        status = r["status"] or "(no server)"
        print(f"{r['id']:40} {r['size_bytes'] / 2**30:7.2f} GiB  {r['quant']:10} "
              f"{status:10} {r['source']}" + (f"  +{r['mmproj']}" if r["mmproj"] else ""))
    for problem in catalog.problems:
        print(f"skipped {problem.path}: {problem.reason}")
    return 0


def rm(args: argparse.Namespace) -> int:
    settings = _settings(args)
    view = _server(settings, args)
    if view is not None:
        r = httpx.delete(f"{view.url}/models/{args.model}", params={"force": args.force},
                         headers=_headers(settings), timeout=120)
        body = r.json()
        if r.status_code != 200:
            print(f"error: {body.get('error', {}).get('message', body)}", file=sys.stderr)
            return 1
        files = ", ".join(body["files"])
        print(json.dumps(body) if args.json else f"removed {args.model}: {files}")
        return 0
    return _rm_local(settings, args)


def _rm_local(settings: Settings, args: argparse.Namespace) -> int:
    from app.catalog.catalog import scan
    from app.hub.local import remove_files

    catalog = scan(settings.models_dir, settings.models_file_path, _defaults(settings))
    entry = catalog.get(args.model)
    if entry is None:
        print(f"error: no model '{args.model}' in {settings.models_dir}", file=sys.stderr)
        return 1
    if not entry.path.resolve().is_relative_to(Path(settings.models_dir).resolve()):
        print(f"error: {entry.path} is outside the models dir; not deleting it", file=sys.stderr)
        return 1
    files = remove_files(settings.models_dir, entry)
    print(json.dumps({"id": entry.id, "deleted": True, "files": files}) if args.json
          else f"removed {entry.id}: {', '.join(files)}")
    return 0
