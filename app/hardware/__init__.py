"""Hardware probe: which llama.cpp backend to use and how much memory the models may take.

Entry points: ``probe()`` -> ``ProbeReport`` (``to_dict()`` for JSON) and
``format_report(report)`` for the text table. Parsers are pure functions of text; the readers
take a ``root`` directory so tests can point them at a fixture machine.
"""

from app.hardware.choice import BackendChoice, choose_backend
from app.hardware.pool import MemoryPool, compute_pool
from app.hardware.probe import ProbeReport, probe
from app.hardware.report import format_report

__all__ = [
    "BackendChoice",
    "MemoryPool",
    "ProbeReport",
    "choose_backend",
    "compute_pool",
    "format_report",
    "probe",
]
