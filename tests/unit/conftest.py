"""Unit tests see the settings' defaults only: POLARIS_* variables of the shell are hidden."""

from __future__ import annotations

import os

import pytest

from workers.settings import get_settings


@pytest.fixture(autouse=True)
def _hermetic_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("POLARIS_")]:
        monkeypatch.delenv(name)
    get_settings.cache_clear()
