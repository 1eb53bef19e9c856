"""Which of llama.cpp's CPU backend variants to run: a pure choice over what is installed.

halo builds llama.cpp with ``GGML_BACKEND_DL`` + ``GGML_CPU_ALL_VARIANTS``: the CPU backend is
one module per ISA level (``libggml-cpu-x64.so`` ... ``libggml-cpu-zen4.so``,
``libggml-cpu-sapphirerapids.so``), nothing is compiled for the build host, and each module's
``ggml_backend_score()`` says whether this CPU can run it (0 = no) and how well. ggml's own loader
takes the best score; halo takes the best score *among the variants it allows*: a variant built
with AMX runs only when the AMX check (app/hardware/amx.py) saw tile instructions execute,
because CPUID can advertise AMX that the hypervisor does not enable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# Variants that ggml's CMake (ggml/src/CMakeLists.txt, GGML_CPU_ALL_VARIANTS) builds with
# AMX_TILE/AMX_INT8; tests/portable/test_installed_libs.py disassembles every installed module and
# fails if AMX instructions appear in a variant not listed here.
AMX_VARIANTS = frozenset({"sapphirerapids"})
_MODULE_RE = re.compile(r"^libggml-cpu-(?P<name>[A-Za-z0-9_.]+)\.so$")


def variant_name(filename: str) -> str | None:
    """``libggml-cpu-haswell.so`` -> ``haswell``; None for other files."""
    match = _MODULE_RE.match(filename)
    return match.group("name") if match else None


@dataclass(frozen=True)
class Variant:
    name: str
    score: int  # ggml_backend_score() of the module on this CPU; 0 = cannot run here

    @property
    def uses_amx(self) -> bool:
        return self.name in AMX_VARIANTS


@dataclass(frozen=True)
class VariantChoice:
    name: str | None
    reasons: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)  # variant -> why not


def choose_variant(
    variants: Iterable[Variant], *, amx_usable: bool, forced: str | None = None
) -> VariantChoice:
    """The best-scoring runnable variant, AMX ones only when ``amx_usable``.

    ``forced`` (setting ``cpu_variant``) names one explicitly: taken if installed, even with a
    score of 0 or AMX unproven (the user asked; a crash is then explained at load).
    """
    pool = sorted(variants, key=lambda v: (-v.score, v.name))
    if forced:
        for variant in pool:
            if variant.name == forced:
                return VariantChoice(forced, (f"cpu_variant={forced} was requested",))
        return VariantChoice(None, (f"cpu_variant={forced} is not installed",),
                             {v.name: "not requested" for v in pool})
    skipped: dict[str, str] = {}
    chosen: Variant | None = None
    for variant in pool:
        if variant.uses_amx and not amx_usable:
            skipped[variant.name] = "uses AMX, which did not pass the execution check"
        elif variant.score <= 0:
            skipped[variant.name] = "needs instructions this CPU does not have"
        elif chosen is None:
            chosen = variant
        else:
            skipped[variant.name] = f"scores lower than {chosen.name}"
    if chosen is None:
        return VariantChoice(None, ("no installed CPU variant can run on this CPU",), skipped)
    return VariantChoice(chosen.name, (f"{chosen.name} has the best score ({chosen.score}) "
                                       "of the variants this CPU runs",), skipped)
