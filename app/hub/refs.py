"""What `REPO[:QUANT]` or `REPO FILENAME` means in a repo's file list (pure, no I/O).

A repo holds GGUF "variants": single files or complete sets of `-0000i-of-0000N` shards, plus
optional `mmproj` files (vision projectors, fetched alongside the model, never models of their own).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from app.catalog.shards import split_name
from app.catalog.sources import is_mmproj
from app.errors import BadModelRef, HubNotFound

DEFAULT_QUANT = "Q4_K_M"
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# the quantization label at the end of a GGUF file stem: Q4_K_M, IQ4_XS, UD-Q4_K_XL, F16, BF16, ...
_LABEL = re.compile(
    r"(?:^|[-._])(?P<label>(?:UD-)?(?:I?Q\d(?:_[0-9A-Z]+)*|T?Q\d_\d|BF16|F16|F32|MXFP4(?:_MOE)?))$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Ref:
    repo: str
    quant: str | None = None
    filename: str | None = None
    revision: str = "main"

    def __str__(self) -> str:
        if self.filename:
            return f"{self.repo} {self.filename}"
        return f"{self.repo}:{self.quant}" if self.quant else self.repo


@dataclass(frozen=True)
class RemoteFile:
    name: str  # path inside the repo
    size: int
    sha256: str | None  # the LFS hash; None for files not stored in LFS

    @property
    def basename(self) -> str:
        return PurePosixPath(self.name).name


@dataclass(frozen=True)
class Variant:
    label: str  # e.g. "Q4_K_M" (the file stem when no label is recognised)
    files: tuple[RemoteFile, ...]  # one file, or every shard in order

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class Selection:
    """What a pull fetches: the model's files and the vision projector, if the repo has one."""

    repo: str
    revision: str
    variant: Variant
    mmproj: RemoteFile | None

    @property
    def model_id(self) -> str:
        first = self.variant.files[0].basename
        split = split_name(first)
        return split[0] if split else first.removesuffix(".gguf")

    @property
    def files(self) -> tuple[RemoteFile, ...]:
        return self.variant.files + ((self.mmproj,) if self.mmproj else ())

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def source(self) -> str:
        return f"{self.repo}:{self.variant.label}"


def parse_ref(text: str, filename: str | None = None) -> Ref:
    """`org/name`, `org/name:Q4_K_M`, `hf.co/org/name:q8_0` (+ an optional FILENAME)."""
    text = text.strip()
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    for host in ("hf.co/", "huggingface.co/"):
        text = text.removeprefix(host)
    repo, _, quant = text.partition(":")
    revision = "main"
    if "@" in repo:
        repo, _, revision = repo.partition("@")
    if not _REPO.match(repo):
        raise BadModelRef(f"'{text}' is not a Hugging Face repo id (expected 'org/name[:QUANT]')")
    if quant and not re.fullmatch(r"[\w.-]+", quant):
        raise BadModelRef(f"'{quant}' is not a quantization name (like Q4_K_M or UD-Q4_K_XL)")
    if filename and quant:
        raise BadModelRef("give either REPO:QUANT or REPO FILENAME, not both")
    return Ref(repo=repo, quant=quant or None, filename=filename or None,
               revision=revision or "main")


def label_of(stem: str) -> str:
    m = _LABEL.search(stem)
    return m["label"].upper() if m else stem


def variants(files: list[RemoteFile]) -> list[Variant]:
    """The repo's model variants (complete shard sets only), sorted by label."""
    singles: list[Variant] = []
    groups: dict[tuple[str, int], dict[int, RemoteFile]] = {}
    for f in files:
        if not f.name.lower().endswith(".gguf") or is_mmproj(f.name):
            continue
        split = split_name(f.basename)
        if split is None:
            singles.append(Variant(label_of(f.basename[: -len(".gguf")]), (f,)))
            continue
        prefix, no, count = split
        groups.setdefault((str(PurePosixPath(f.name).parent / prefix), count), {})[no] = f
    for (prefix, count), shards in groups.items():
        if sorted(shards) == list(range(1, count + 1)):
            ordered = tuple(shards[i] for i in range(1, count + 1))
            singles.append(Variant(label_of(PurePosixPath(prefix).name), ordered))
    return sorted(singles, key=lambda v: (v.label, v.files[0].name))


def _describe(found: list[Variant]) -> str:
    return ", ".join(f"{v.label} ({v.size / 2**30:.1f} GiB)" for v in found) or "none"


def select(ref: Ref, files: list[RemoteFile]) -> Selection:
    """Pick the variant `ref` names (HubError listing the choices when it is unclear)."""
    found = variants(files)
    if not found:
        raise HubNotFound(f"{ref.repo} has no GGUF files")
    if ref.filename is not None:
        wanted = ref.filename.lower()
        chosen = [v for v in found
                  if any(f.name.lower() == wanted or f.basename.lower() == wanted
                         for f in v.files)]
        if not chosen:
            raise HubNotFound(f"{ref.repo} has no GGUF file '{ref.filename}' "
                                f"(variants: {_describe(found)})")
    else:
        quant = (ref.quant or DEFAULT_QUANT).upper()
        chosen = [v for v in found if v.label == quant]
        if not chosen:  # e.g. "Q4_K" naming a single "Q4_K_M"-style family member
            chosen = [v for v in found
                      if re.search(rf"(?:^|[-._]){re.escape(quant)}(?:$|[-._])",
                                   v.files[0].basename.upper())]
        if not chosen and ref.quant is None and len(found) == 1:
            chosen = found
        if not chosen:
            what = f"no {quant} variant" + ("" if ref.quant else " (the default)")
            raise HubNotFound(f"{ref.repo} has {what}; choose one of: {_describe(found)}")
        if len(chosen) > 1:
            raise BadModelRef(f"'{quant}' matches several files in {ref.repo}: "
                           f"{', '.join(v.files[0].name for v in chosen)}; name one with "
                           "`halo pull REPO FILENAME`")
    return Selection(ref.repo, ref.revision, chosen[0], _mmproj(files))


def _mmproj(files: list[RemoteFile]) -> RemoteFile | None:
    projectors = sorted((f for f in files if is_mmproj(f.name) and f.name.endswith(".gguf")),
                        key=lambda f: f.name)
    if not projectors:
        return None
    preferred = [f for f in projectors if re.search(r"(?<!b)f16", f.basename.lower())]
    return (preferred or projectors)[0]
