"""The three servers under test: how each is prepared, started, health-checked and stopped.

Every server is started on a free 127.0.0.1 port in its own process group, with its output
written to a log file, and stopped (SIGTERM, then SIGKILL of the group and of any descendant that
left it) when the benchmark of that server ends, whatever the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import build_llama_server, build_native_lib

REPO_ROOT = Path(__file__).resolve().parent.parent
MODEL_ID = "smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
N_CTX_PER_SLOT = 2048
PARALLEL = 8
THREADS = 2
LLAMA_CPP_PYTHON_VERSION = build_llama_server.LLAMA_CPP_PYTHON_VERSION


class ServerUnavailable(Exception):
    """The server could not be prepared, started or made healthy; the message says why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Launch:
    """What `ServerSpec.prepare` hands back: the command line and where it runs."""

    argv: list[str]
    cwd: Path
    cleanup: Callable[[], None] = lambda: None
    env: dict[str, str] = field(default_factory=dict)  # added to the environment


@dataclass
class ServerSpec:
    name: str
    description: str
    health_path: str
    # Extra JSON fields for a chat request (given max_tokens) so it generates exactly max_tokens.
    extra_body: Callable[[int], dict[str, Any]]
    prepare: Callable[[Path, int, int], Launch]  # (model, port, CPU threads) -> command line
    label: str = ""  # short column title in the table (defaults to name)
    startup_timeout: float = 180.0
    # editing workload: configuration name -> extra request fields (one server, several bodies)
    edit_bodies: dict[str, dict[str, Any]] = field(default_factory=lambda: {"": {}})


# -- halo ---------------------------------------------------------------------------------------


def _prepare_halo(model: Path, port: int, threads: int, toml: str = "") -> Launch:
    python = REPO_ROOT / ".venv" / "bin" / "python"
    if not python.is_file():
        raise ServerUnavailable(f"{python} is missing (run `make serve` or `make test` first)")
    models_dir = Path(tempfile.mkdtemp(prefix="halo-bench-models-"))
    (models_dir / MODEL_FILE).symlink_to(model.resolve())
    (models_dir / "models.toml").write_text(
        f'[models.{MODEL_ID}]\npath = "{MODEL_FILE}"\n'
        f"n_ctx = {N_CTX_PER_SLOT}\nparallel = {PARALLEL}\n{toml}",
        encoding="utf-8",
    )
    argv = [
        str(python), "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--models-dir", str(models_dir), "--n-threads", str(threads),
    ]
    return Launch(argv, REPO_ROOT, lambda: shutil.rmtree(models_dir, ignore_errors=True))


def _prepare_halo_native(model: Path, port: int, threads: int) -> Launch:
    """halo on a host-native llama.cpp build (GGML_NATIVE=ON): the portable build's yardstick."""
    if not build_native_lib.is_built():
        print("building a native llama.cpp for halo-native (several minutes)", flush=True)
        try:
            build_native_lib.build()
        except (subprocess.CalledProcessError, OSError) as exc:
            raise ServerUnavailable(f"building the native llama.cpp failed: {exc}") from exc
    launch = _prepare_halo(model, port, threads)
    launch.env["LLAMA_CPP_LIB_PATH"] = str(build_native_lib.lib_dir())
    return launch


# -- llama-server (C++) -------------------------------------------------------------------------


def _prepare_llama_server(
    model: Path, port: int, threads: int, extra: tuple[str, ...] = ()
) -> Launch:
    binary = build_llama_server.binary_path()
    if not build_llama_server.is_built():
        print(f"llama-server is not built yet; building it into {binary.parent}", flush=True)
        try:
            binary = build_llama_server.build()
        except (subprocess.CalledProcessError, SystemExit) as exc:
            raise ServerUnavailable(f"building llama-server failed: {exc}") from exc
    argv = [
        str(binary), "-m", str(model), "-np", str(PARALLEL), "-t", str(threads),
        "-c", str(N_CTX_PER_SLOT * PARALLEL), "--host", "127.0.0.1", "--port", str(port),
        *extra,
    ]
    return Launch(argv, REPO_ROOT)


# -- llama_cpp.server (llama-cpp-python) --------------------------------------------------------


def bench_venv() -> Path:
    return build_llama_server.cache_root() / "venv"


def ensure_bench_venv() -> Path:
    """A separate venv with llama-cpp-python[server]; never touches the project's .venv."""
    venv = bench_venv()
    python = venv / "bin" / "python"
    stamp = venv / f".llama-cpp-python-server-{LLAMA_CPP_PYTHON_VERSION}"
    if python.is_file() and stamp.is_file():
        return python
    print(f"creating {venv} with llama-cpp-python[server]=={LLAMA_CPP_PYTHON_VERSION} "
          "(pip reuses its cached wheel; a cold cache builds for about 6 minutes)", flush=True)
    started = time.monotonic()
    try:
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--progress-bar", "off",
             f"llama-cpp-python[server]=={LLAMA_CPP_PYTHON_VERSION}"],
            check=True,
        )
    except subprocess.CalledProcessError as exc:
        raise ServerUnavailable(f"setting up {venv} failed: {exc}") from exc
    stamp.write_text(f"installed in {time.monotonic() - started:.0f}s\n")
    return python


def _prepare_llama_cpp_python(model: Path, port: int, threads: int, *, interrupt: bool) -> Launch:
    python = ensure_bench_venv()
    argv = [
        str(python), "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ID,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(N_CTX_PER_SLOT),
        "--n_threads", str(threads), "--n_threads_batch", str(threads),
    ]
    if not interrupt:
        argv += ["--interrupt_requests", "False"]
    return Launch(argv, REPO_ROOT)


# halo's configurations of the editing workload: the same server with and without speculation
HALO_EDIT_BODIES = {"no speculation": {"speculative": {"type": "off"}},
                    "ngram": {"speculative": {"type": "ngram"}}}


def _ignore_eos(max_tokens: int) -> dict[str, Any]:
    return {"ignore_eos": True}


def _halo_no_speculation(max_tokens: int) -> dict[str, Any]:
    return {"ignore_eos": True, "speculative": {"type": "off"}}


def _min_tokens(max_tokens: int) -> dict[str, Any]:
    # llama_cpp.server has no ignore_eos; min_tokens bans EOS until that many tokens exist.
    return {"min_tokens": max_tokens}


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec(
            "halo", f"halo (this repo), parallel={PARALLEL}, n_ctx={N_CTX_PER_SLOT}/slot",
            "/health", _ignore_eos, _prepare_halo, "halo",
            edit_bodies=HALO_EDIT_BODIES,
        ),
        ServerSpec(
            "halo-nospec", "halo as above, every request with speculation off",
            "/health", _halo_no_speculation, _prepare_halo, "halo-nospec",
        ),
        ServerSpec(
            "halo-f16kv", "halo as above with f16 keys (the CPU default is q8_0 keys, f16 values)",
            "/health", _ignore_eos,
            lambda m, p, t: _prepare_halo(m, p, t, 'cache_type_k = "f16"\n'), "halo-f16kv",
            edit_bodies=HALO_EDIT_BODIES,
        ),
        ServerSpec(
            "halo-native", "halo on a GGML_NATIVE=ON llama.cpp (bench/build_native_lib.py)",
            "/health", _ignore_eos, _prepare_halo_native, "halo-nat",
        ),
        ServerSpec(
            "llama-server",
            f"llama.cpp llama-server from the llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sdist, "
            f"-np {PARALLEL} -c {N_CTX_PER_SLOT * PARALLEL}",
            "/health", _ignore_eos, _prepare_llama_server, "llama-server",
        ),
        *(
            ServerSpec(
                f"llama-server-{kind}",
                f"llama-server as above with --spec-type {kind}",
                "/health", _ignore_eos,
                lambda m, p, t, kind=kind: _prepare_llama_server(m, p, t, ("--spec-type", kind)),  # type: ignore[misc]
                f"ls-{kind}",
            )
            for kind in ("ngram-mod", "ngram-simple")
        ),
        ServerSpec(
            "llama-cpp-python",
            "python -m llama_cpp.server (defaults: one sequence, interrupt_requests=True)",
            "/v1/models", _min_tokens, lambda m, p, t: _prepare_llama_cpp_python(
                m, p, t, interrupt=True), "lcpp",
        ),
        ServerSpec(
            "llama-cpp-python-nointerrupt",
            "python -m llama_cpp.server --interrupt_requests False (requests queue instead)",
            "/v1/models", _min_tokens, lambda m, p, t: _prepare_llama_cpp_python(
                m, p, t, interrupt=False), "lcpp-noint",
        ),
    )
}


# -- process lifecycle --------------------------------------------------------------------------


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    launch: Launch
    startup_seconds: float = 0.0
    descendants: set[int] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """CPU time (user+system) used so far by the server and all of its live descendants."""
        try:
            import psutil
        except ImportError:
            return 0.0
        total = 0.0
        try:
            root = psutil.Process(self.process.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    def remember_descendants(self) -> None:
        """Record the pids of this server's children (halo's workers), to stop them by pid."""
        try:
            import psutil
        except ImportError:
            return
        try:
            kids = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            return
        self.descendants.update(k.pid for k in kids)

    def stop(self, timeout: float = 20.0) -> None:
        self.remember_descendants()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        _kill_leftovers(self.descendants)
        self.launch.cleanup()


def _kill_leftovers(pids: set[int]) -> None:
    try:
        import psutil
    except ImportError:
        return
    alive = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.terminate()
            alive.append(proc)
        except psutil.Error:
            continue
    _, still = psutil.wait_procs(alive, timeout=10)
    for proc in still:
        try:
            proc.kill()
        except psutil.Error:
            continue


def start(spec: ServerSpec, model: Path, log_dir: Path, threads: int = THREADS) -> RunningServer:
    """Prepare and start one server (with `threads` CPU threads for its compute) and wait until
    its health endpoint answers 200."""
    port = free_port()
    launch = spec.prepare(model, port, threads)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.name}.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1", **launch.env)
    with log_path.open("wb") as log:
        log.write(("$ " + " ".join(launch.argv) + "\n").encode())
        log.flush()
        process = subprocess.Popen(
            launch.argv, cwd=launch.cwd, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )
    server = RunningServer(spec, port, process, log_path, launch)
    started = time.monotonic()
    try:
        _wait_healthy(server, spec.startup_timeout)
    except BaseException:
        server.stop()
        raise
    server.startup_seconds = time.monotonic() - started
    server.remember_descendants()
    return server


def _wait_healthy(server: RunningServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = server.base_url + server.spec.health_path
    last = "no answer"
    with httpx.Client(timeout=5.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            code = server.process.poll()
            if code is not None:
                raise ServerUnavailable(
                    f"{server.spec.name} exited with code {code} before becoming healthy; "
                    f"log {server.log_path}:\n{server.log_tail()}"
                )
            try:
                response = client.get(url)
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.5)
    raise ServerUnavailable(
        f"{server.spec.name} not healthy after {timeout:.0f}s ({last}); log {server.log_path}:\n"
        f"{server.log_tail()}"
    )
