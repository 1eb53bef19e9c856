"""`halo serve | models | probe | pull | fit | ls | rm | node`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from app.config import Settings, load_settings
from app.node_cmd import add_node_parser


def _serve_parser(sub: Any) -> None:
    fields = Settings.model_fields
    p = sub.add_parser("serve", help="run the OpenAI-compatible server",
                       description="Run the server. Each flag overrides HALO_<NAME> and "
                       "halo.toml; see the README for every setting.")
    p.add_argument("--config", type=Path, help="TOML settings file (default ./halo.toml)")
    flags = {
        "host": str, "port": int, "models_dir": Path, "models_file": Path,
        "memory_budget": str, "backend": str, "log_level": str, "n_threads": int,
        "cpu_variant": str,
    }
    for name, kind in flags.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind,
                       help=f"{fields[name].description} [env HALO_{name.upper()}]")
    p.add_argument("--api-key", dest="api_keys", action="append",
                   help=f"{fields['api_keys'].description} Repeatable. [env HALO_API_KEYS]")
    p.add_argument("--preload", dest="preload", action="append",
                   help=f"{fields['preload'].description} Repeatable. [env HALO_PRELOAD]")
    p.add_argument("--insecure-no-auth", dest="insecure_no_auth", action="store_true",
                   default=None, help=f"{fields['insecure_no_auth'].description} "
                   "[env HALO_INSECURE_NO_AUTH]")
    p.add_argument("--node", dest="nodes", action="append",
                   help=f"{fields['nodes'].description} Repeatable. [env HALO_NODES]")


def _settings(args: argparse.Namespace) -> Settings:
    cli = {k: v for k, v in vars(args).items()
           if k in Settings.model_fields and v is not None}
    return load_settings(cli, getattr(args, "config", None))


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app import logs
    from app.api.auth import bind_refusal, is_loopback
    from app.factory import create_app

    settings = _settings(args)
    logs.configure(settings.log_level)
    refusal = bind_refusal(settings)
    if refusal is not None:
        print(f"halo: {refusal}", file=sys.stderr)
        return 2
    if not is_loopback(settings.host) and not settings.api_keys:
        logging.getLogger("app.cli").warning(
            "listening on %s with no API key (--insecure-no-auth): anyone who can reach this "
            "port can use and manage the models", settings.host)
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None,
                access_log=False, timeout_graceful_shutdown=10)
    return 0


def list_models(args: argparse.Namespace) -> int:
    from app.catalog.catalog import Defaults, scan

    settings = _settings(args)
    catalog = scan(settings.models_dir, settings.models_file_path,
                   Defaults(settings.default_n_ctx, settings.default_parallel,
                            settings.default_ttl, tuple(settings.nodes)))
    rows = [{"id": e.id, "path": str(e.path), "size_bytes": e.size_bytes,
             "context_length": e.context_length, "architecture": e.file.info.architecture}
            for e in catalog]
    if args.json:
        print(json.dumps({"models": rows, "problems": [
            {"path": str(p.path), "reason": p.reason} for p in catalog.problems]}, indent=2))
        return 0
    for e in catalog:
        print(f"{e.id:40} {e.size_bytes / 2**20:9.1f} MiB  ctx {e.context_length}"
              f"  {e.file.info.architecture}")
    for problem in catalog.problems:
        print(f"skipped {problem.path}: {problem.reason}")
    return 0


def run_probe(args: argparse.Namespace) -> int:
    from app.factory import run_probe as probe
    from app.hardware.report import format_report

    if args.check_nodes:
        from app.node_cmd import probe_nodes

        return probe_nodes(load_settings({}, args.config), as_json=args.json)
    settings = _settings(args)
    report = probe(settings)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0 if report.choice.ok else 1


def _local_args(p: argparse.ArgumentParser, server: bool = False) -> None:
    p.add_argument("--models-dir", dest="models_dir", type=Path)
    p.add_argument("--models-file", dest="models_file", type=Path)
    p.add_argument("--config", type=Path)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    if server:
        p.add_argument("--server", help="a running halo (default http://HOST:PORT from the "
                       "settings); used when it answers")


def node(args: argparse.Namespace) -> int:
    from app.node_cmd import run_node

    cli = {"backend": args.backend, "cpu_variant": args.cpu_variant}
    settings = load_settings({k: v for k, v in cli.items() if v is not None},
                             Path(args.config) if args.config else None)
    return run_node(args, settings)


def main(argv: list[str] | None = None) -> int:
    from app import cli_models

    parser = argparse.ArgumentParser(prog="halo", description="Local LLM server for Strix Halo")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    models = sub.add_parser("models", help="list the models in the catalog")
    models.add_argument("--models-dir", dest="models_dir", type=Path)
    models.add_argument("--models-file", dest="models_file", type=Path)
    models.add_argument("--config", type=Path)
    models.add_argument("--json", action="store_true")
    probe = sub.add_parser("probe", help="report this machine's backend choice and memory pool",
                           description="Probe the machine and the llama.cpp build; exit 1 if "
                           "the requested backend cannot be used.")
    probe.add_argument("--backend", dest="backend", choices=["auto", "cpu", "vulkan", "rocm"])
    probe.add_argument("--memory-budget", dest="memory_budget", type=str)
    probe.add_argument("--cpu-variant", dest="cpu_variant", type=str)
    probe.add_argument("--config", type=Path)
    probe.add_argument("--json", action="store_true")
    probe.add_argument("--nodes", dest="check_nodes", action="store_true",
                       help="check every node in `nodes` instead: reachable, RPC protocol "
                       "version, device memory; exit 1 if one is not usable")
    add_node_parser(sub)
    pull = sub.add_parser("pull", help="download a GGUF model from Hugging Face",
                          description="Download REPO[:QUANT] (default Q4_K_M) or REPO FILENAME "
                          "into the models dir: every shard, the mmproj file if any; resumable, "
                          "sha256-checked. HF_TOKEN and HF_ENDPOINT are honoured.")
    pull.add_argument("model", nargs="?", help="org/repo[:QUANT]")
    pull.add_argument("filename", nargs="?", help="one GGUF file of the repo instead of QUANT")
    pull.add_argument("--all", action="store_true", help="every models.toml entry with source=")
    pull.add_argument("--yes", "-y", action="store_true",
                      help="pull even when it can never fit the memory budget")
    pull.add_argument("--memory-budget", dest="memory_budget", type=str)
    _local_args(pull, server=True)
    fit = sub.add_parser("fit", help="will a hub model fit? (reads only its GGUF header)")
    fit.add_argument("model", help="org/repo[:QUANT]")
    fit.add_argument("filename", nargs="?")
    fit.add_argument("--memory-budget", dest="memory_budget", type=str)
    _local_args(fit, server=True)
    ls = sub.add_parser("ls", help="list local models: size, quant, source, loaded or not")
    _local_args(ls, server=True)
    rm = sub.add_parser("rm", help="delete a model's files")
    rm.add_argument("model", help="model id (as in `halo ls`)")
    rm.add_argument("--force", action="store_true", help="unload it first if loaded")
    _local_args(rm, server=True)
    args = parser.parse_args(argv)
    handlers = {"serve": serve, "models": list_models, "probe": run_probe,
                "pull": cli_models.pull, "fit": cli_models.fit, "ls": cli_models.ls,
                "rm": cli_models.rm, "node": node}
    if args.command == "pull" and not args.all and not args.model:
        parser.error("pull needs REPO[:QUANT] (or --all)")
    return handlers[args.command](args)
