"""`polaris eval ...`: benchmark commands that score the pure steps on real data.

Each evaluation is one module here exposing::

    HELP: str                                     # one line for `polaris eval --help`
    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int      # exit code

Modules are imported lazily so that `polaris stack ...` never pays for spaCy or numpy.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from types import ModuleType

# name on the command line -> module implementing it
EVALS: dict[str, str] = {
    "parse": "workers.evals.parse",
    "templates": "workers.evals.templates",
    "ner": "workers.evals.ner",
    "nab": "workers.evals.nab",
    "log-anomaly": "workers.evals.log_anomaly",
}

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def load(name: str) -> ModuleType:
    return importlib.import_module(EVALS[name])


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add one `polaris eval <name>` parser per available evaluation module."""
    for name in EVALS:
        try:
            module = load(name)
        except ModuleNotFoundError:
            continue  # an evaluation whose module is not written yet
        parser = subparsers.add_parser(name, help=getattr(module, "HELP", ""))
        module.add_arguments(parser)
        parser.set_defaults(eval_run=module.run)
