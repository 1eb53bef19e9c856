"""`halo node` (serve this box's device to another halo over llama.cpp's RPC backend) and
`halo probe --nodes` (check every configured node)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from app.api.auth import is_loopback
from app.config import Settings
from app.hardware.nodes import query_nodes

RPC_SECURITY = ("llama.cpp's RPC protocol has no authentication or encryption: anyone who "
                "reaches the port can read and write this box's memory. Bind it to a private "
                "link between your boxes only.")


def add_node_parser(sub: Any) -> None:
    p = sub.add_parser("node", help="serve this box's memory/device to another halo (RPC)",
                       description="Run llama.cpp's RPC server so that `halo serve` on another "
                       "box can put part of a model here. " + RPC_SECURITY)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=50052, help="TCP port (default 50052)")
    p.add_argument("--backend", choices=["auto", "cpu", "vulkan", "rocm"], default=None,
                   help="llama.cpp backend, decided by the probe as for `halo serve`")
    p.add_argument("--mem", type=str, default=None,
                   help="memory to offer, e.g. 96GiB (default: what the device reports)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default all)")
    p.add_argument("--cpu-variant", dest="cpu_variant", default=None,
                   help="CPU backend variant, as for `halo serve` (default: the probe's)")
    p.add_argument("--allow-network", action="store_true",
                   help="allow a non-loopback --host (" + RPC_SECURITY + ")")
    p.add_argument("--config", default=None, help="TOML settings file (default ./halo.toml)")


def run_node(args: Any, settings: Settings) -> int:
    """Check the bind address, probe the backend, then become the RPC server (exec)."""
    from pydantic import ByteSize, TypeAdapter, ValidationError

    if not is_loopback(args.host) and not args.allow_network:
        print(f"halo node: refusing to bind {args.host}: {RPC_SECURITY} Pass --allow-network "
              "to bind it anyway.", file=sys.stderr)
        return 2
    if ":" in args.host:
        print("halo node: llama.cpp's RPC endpoints are host:port; use an IPv4 address or a "
              "host name", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"halo node: invalid port {args.port}", file=sys.stderr)
        return 2
    mem = None
    if args.mem is not None:
        try:
            mem = int(TypeAdapter(ByteSize).validate_python(args.mem))
        except ValidationError:
            print(f"halo node: --mem {args.mem!r} is not a size such as 96GiB", file=sys.stderr)
            return 2
    from app.engine.spawn import package_env
    from app.factory import run_probe

    report = run_probe(settings)
    choice = report.choice
    if not choice.ok:
        print(f"halo node: backend {choice.requested!r} cannot be used here: "
              f"{'; '.join(choice.reasons)}", file=sys.stderr)
        return 1
    print(f"halo node: backend {choice.backend} ({'; '.join(choice.reasons)})", flush=True)
    env = package_env(dict(os.environ), lib_path=choice.lib_path, extra=choice.env)
    argv = [sys.executable, "-P", "-m", "app.engine.node_server",
            "--endpoint", f"{args.host}:{args.port}"]
    if mem is not None:
        argv += ["--mem", str(mem)]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    if choice.backend == "cpu":
        argv.append("--cpu")
    cpu = report.llama.cpu if report.llama else None
    if cpu is not None and cpu.variant:
        argv += ["--cpu-variant", cpu.variant]
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)
    return 1  # not reached: execve replaced this process


def probe_nodes(settings: Settings, *, as_json: bool) -> int:
    """Reachability, protocol version and memory of every node in the settings."""
    infos = asyncio.run(query_nodes(settings.nodes))
    if as_json:
        print(json.dumps({"nodes": [i.to_dict() for i in infos]}, indent=2))
    elif not infos:
        print("no nodes configured (set nodes = [\"box2:50052\"] in halo.toml or HALO_NODES)")
    for info in infos if not as_json else ():
        print(info.describe())
    return 0 if all(i.ok for i in infos) else 1
