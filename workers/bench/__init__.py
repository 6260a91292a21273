"""`polaris bench ...`: benchmarks that print figures and save them as JSON (never asserted)."""

from __future__ import annotations

import argparse
import importlib

BENCHES: dict[str, tuple[str, str]] = {
    "process": ("workers.bench.process", "lines/s per core of each process-tier step vs a bare consumer"),
    "scoring": ("workers.bench.scoring", "anomaly scorers: NAB and BGL quality, detector speed per core"),
}


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    for name, (module_name, help_text) in BENCHES.items():
        module = importlib.import_module(module_name)
        parser = subparsers.add_parser(name, help=help_text)
        module.add_arguments(parser)
        parser.set_defaults(bench_run=module.run)
