"""Shared test settings. Integration tests are marked and need the running stack."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # On CI, selected integration tests that were all skipped mean the run proved nothing.
    if os.environ.get("CI") != "true":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    integration = [r for key in ("passed", "failed", "skipped", "error") for r in reporter.stats.get(key, [])
                   if "/integration/" in getattr(r, "nodeid", "")]
    if integration and all(getattr(r, "skipped", False) for r in integration):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
