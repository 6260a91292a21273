from __future__ import annotations

import time
from pathlib import Path

from workers.stack.process import ManagedProcess, _group_alive


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    process = ManagedProcess("sleeper", tmp_path, stop_grace_s=5)
    # A parent that forks a child: both must go.
    pid = process.start(["sh", "-c", "sleep 300 & sleep 300; wait"])
    time.sleep(0.3)
    assert process.pid() == pid and _group_alive(pid)
    assert process.stop() is True
    assert not _group_alive(pid) and process.pid() is None and not process.pid_file.exists()
    assert process.stop() is False  # idempotent


def test_a_stale_pid_file_is_ignored(tmp_path: Path) -> None:
    process = ManagedProcess("ghost", tmp_path)
    process.pid_file.write_text("1 0\n")  # pid 1 exists but was not started by us at time 0
    assert process.pid() is None
    assert process.stop() is False


def test_a_process_that_exits_is_reported(tmp_path: Path) -> None:
    process = ManagedProcess("short", tmp_path)
    process.start(["sh", "-c", "echo starting; exit 3"])
    time.sleep(0.3)
    assert process.exited_early() and "starting" in process.log_tail()
