"""Template keys from the streaming miner (`workers.steps.templates.TemplateMiner`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workers.evals.log_anomaly import Line


def miner_keyer() -> Callable[[Line], str]:
    try:
        from workers.steps.templates import TemplateMiner
    except ImportError as exc:
        raise ImportError(f"--template-source miner needs workers.steps.templates: {exc}") from exc
    miner = TemplateMiner()

    def key(line: Line) -> str:
        return str(miner.add(line.content).template_id)

    return key
