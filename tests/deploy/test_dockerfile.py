"""The Dockerfile builds what the Makefile/README build: the same llama-cpp-python pin, the same
CMAKE_ARGS per backend, the project installed the same way. No engine is needed: both files
are parsed, so a change to either that is not made to the other fails here."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from typing import Any

import pytest

from app.config import Settings
from tests.deploy.dashboard import REPO

BACKENDS = {"cpu", "vulkan", "rocm"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile() -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        out.append(Instruction(keyword.upper(), " ".join(args.split())))
        pending = ""
    assert not pending, "Dockerfile ends inside a continuation"
    return out


def args_of(keyword: str) -> list[str]:
    return [i.args for i in dockerfile() if i.keyword == keyword]


def arg_default(name: str) -> str:
    values = [a.split("=", 1)[1] for a in args_of("ARG") if a.startswith(name + "=")]
    assert len(values) == 1, f"ARG {name}=... must appear once"
    return values[0]


def makefile_vars() -> dict[str, str]:
    out = {}
    for line in (REPO / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z_][\w]*)\s*:=\s*(.*?)\s*$", line)
        if match:
            out[match.group(1)] = match.group(2)
    return out


def makefile_recipe(target: str) -> list[str]:
    """The commands of a Makefile rule (continuation lines joined)."""
    lines = (REPO / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(target + ":"))
    commands: list[str] = []
    pending = ""
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        if line.rstrip().endswith("\\"):
            pending += line.strip()[:-1] + " "
            continue
        commands.append(" ".join((pending + line).split()))
        pending = ""
    return commands


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def pinned_llama() -> str:
    pins = [d for d in pyproject()["project"]["dependencies"] if d.startswith("llama-cpp-python")]
    assert len(pins) == 1
    match = re.fullmatch(r"llama-cpp-python==([\w.]+)", pins[0])
    assert match, f"llama-cpp-python must be pinned exactly, not {pins[0]!r}"
    return match.group(1)


def dockerfile_cmake_args() -> dict[str, str]:
    runs = [r for r in args_of("RUN") if "llama-cpp-python==" in r]
    assert len(runs) == 1, "one RUN builds llama-cpp-python"
    run = runs[0]
    assert 'CMAKE_ARGS="$cmake_args"' in run
    assert 'case "$BACKEND" in' in run
    arms = dict(re.findall(r'(\w+)\) cmake_args="([^"]*)" ;;', run))
    assert "*) echo" in run, "an unknown BACKEND must fail the build"
    assert "exit 1" in run, "an unknown BACKEND must fail the build"
    return arms


def test_llama_cpp_python_pin_is_the_same_everywhere() -> None:
    version = pinned_llama()
    assert makefile_vars()["LLAMA_CPP_VERSION"] == version
    assert arg_default("LLAMA_CPP_VERSION") == version
    run = next(r for r in args_of("RUN") if "llama-cpp-python==" in r)
    assert '"llama-cpp-python==${LLAMA_CPP_VERSION}"' in run


def test_cmake_args_per_backend_match_the_makefile() -> None:
    make = {k.removeprefix("CMAKE_ARGS_"): v for k, v in makefile_vars().items()
            if k.startswith("CMAKE_ARGS_")}
    assert set(make) == BACKENDS
    assert dockerfile_cmake_args() == make
    build = [c for c in makefile_recipe("$(VENV)/.llama-$(BACKEND)")
             if "llama-cpp-python==$(LLAMA_CPP_VERSION)" in c]
    assert len(build) == 1
    assert 'CMAKE_ARGS="$(CMAKE_ARGS_$(BACKEND))"' in build[0]


def test_readme_documents_the_same_cmake_args() -> None:
    readme = (REPO / "README.md").read_text()
    documented = {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
                  for m in re.finditer(r'make install BACKEND=(\w+)\s+#\s*CMAKE_ARGS='
                                       r'(?:"([^"]*)"|(\S+))', readme)}
    assert documented, "README documents `make install BACKEND=...  # CMAKE_ARGS=...`"
    make = makefile_vars()
    for backend, cmake_args in documented.items():
        assert make[f"CMAKE_ARGS_{backend}"] == cmake_args, backend
    assert set(documented) == BACKENDS - {"cpu"}


def test_backend_stages_and_default() -> None:
    assert arg_default("BACKEND") == "vulkan"
    stages = [f.split() for f in args_of("FROM")]
    named = {s[-1] for s in stages if len(s) == 3 and s[1].upper() == "AS"}
    assert {n.removeprefix("toolchain-") for n in named if n.startswith("toolchain-")} \
        == BACKENDS
    assert {n.removeprefix("runtime-") for n in named if n.startswith("runtime-")} == BACKENDS
    assert ["toolchain-${BACKEND}", "AS", "build"] in stages
    assert stages[-1] == ["runtime-${BACKEND}"], "the final stage is the backend's runtime"
    assert set(dockerfile_cmake_args()) == BACKENDS


def _pip_spec(command: str) -> str:
    """The requirement a `pip install` command installs (flags dropped)."""
    words = shlex.split(command)
    i = words.index("install")
    specs = [w for w in words[i + 1:] if not w.startswith("-")]
    assert len(specs) == 1, command
    return specs[0]


def test_project_is_installed_like_make_install() -> None:
    # Makefile `install`: the project (no extras) after the backend build of llama-cpp-python.
    make_cmd = next(c for c in makefile_recipe("install") if " install " in c)
    make_spec = _pip_spec(make_cmd.replace("$(PIP)", "pip"))
    assert make_spec == "."
    runs = args_of("RUN")
    llama = next(i for i, r in enumerate(runs) if "llama-cpp-python==" in r)
    project = [i for i, r in enumerate(runs)
               if re.search(r"\bpip install\b", r) and "llama-cpp-python" not in r
               and "--upgrade pip" not in r]
    assert len(project) == 1
    assert project[0] > llama, "halo goes in after the backend build, as in the Makefile"
    command = runs[project[0]].split(" && ")[0]
    assert _pip_spec(command) == make_spec  # same project, same extras (none)
    # the project's build inputs are copied, and not excluded by .dockerignore
    workdirs = args_of("WORKDIR")
    assert "/src" in workdirs
    copied = {src for c in args_of("COPY") if not c.startswith("--from")
              for src in c.split()[:-1]}
    meta = pyproject()
    needed = {"pyproject.toml", meta["project"]["readme"],
              *(p.rstrip("*") for p in meta["tool"]["setuptools"]["packages"]["find"]["include"])}
    assert needed <= copied, needed - copied
    ignored = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for path in needed:
        assert not any(fnmatch.fnmatch(path, pattern) for pattern in ignored), path


def test_python_version_satisfies_requires_python() -> None:
    image = arg_default("PYTHON_IMAGE")
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim-\w+", image)
    assert match, image
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", pyproject()["project"]["requires-python"])
    assert minimum
    have = (int(match.group(1)), int(match.group(2)))
    assert have >= (int(minimum.group(1)), int(minimum.group(2)))


def test_runtime_user_volume_healthcheck_and_cmd() -> None:
    users = args_of("USER")
    assert users
    assert users[-1] not in {"root", "0"}
    assert "/models" in args_of("VOLUME")
    port = Settings.model_fields["port"].default
    assert args_of("EXPOSE") == [str(port)]
    cmd = json.loads(args_of("CMD")[-1])
    # inside the container halo binds every interface; compose publishes it on loopback only,
    # and a non-loopback bind without an API key must be asked for explicitly
    assert cmd == ["halo", "serve", "--host", "0.0.0.0", "--models-dir", "/models",
                   "--insecure-no-auth"]
    health = args_of("HEALTHCHECK")
    assert len(health) == 1
    exec_form = json.loads(health[0][health[0].index("CMD ") + 4:])
    assert exec_form[:2] == ["python", "-c"], "no curl in the image: python's urllib"
    assert "urllib.request" in exec_form[2]
    assert "/health" in exec_form[2]
    assert "'HALO_PORT', '8080'" in exec_form[2]
    assert port == 8080
    from app.api.health import router as health_router

    assert "/health" in {getattr(r, "path", None) for r in health_router.routes}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_case_arm_is_a_valid_shell_assignment(backend: str) -> None:
    value = dockerfile_cmake_args()[backend]
    assert all(w.startswith("-D") for w in shlex.split(value)), value


PORTABLE = ("-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON")


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_cpu_code_never_depends_on_the_build_host(backend: str) -> None:
    """Issue 10: no -march=native, no host ISA pinned, AMX never forced on; every backend's
    build carries the CPU variants (the worker picks one at start) and RPC."""
    for source, args in (("Makefile", makefile_vars()[f"CMAKE_ARGS_{backend}"]),
                         ("Dockerfile", dockerfile_cmake_args()[backend])):
        flags = shlex.split(args)
        for wanted in (*PORTABLE, "-DGGML_RPC=ON"):
            assert wanted in flags, f"{source} {backend}: {wanted} missing"
        for flag in flags:
            name = flag.removeprefix("-D").split("=")[0].upper()
            assert "march" not in flag.lower(), (source, flag)
            assert "mtune" not in flag.lower(), (source, flag)
            assert not (name.startswith("GGML_AMX") and flag.upper().endswith("=ON")), flag
            assert name not in {"GGML_AVX", "GGML_AVX2", "GGML_AVX512", "GGML_FMA",
                                "GGML_F16C", "GGML_BMI2", "GGML_AVX_VNNI"}, (source, flag)
