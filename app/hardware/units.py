"""Byte units and their human-readable form, shared by the pool, the policy and the report."""

from __future__ import annotations

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

#: The TTM/GTT limit is counted in pages of this size (``ttm.pages_limit``).
TTM_PAGE_BYTES = 4096
#: Pages per GiB, the factor in ``ttm.pages_limit = GiB * 262144``.
TTM_PAGES_PER_GIB = GIB // TTM_PAGE_BYTES


def gib(n_bytes: int) -> str:
    """``103079215104`` -> ``"96.0 GiB"`` (one decimal, binary units)."""
    return f"{n_bytes / GIB:.1f} GiB"


def human(n_bytes: int | None) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1; ``None`` -> ``"?"``."""
    if n_bytes is None:
        return "?"
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
