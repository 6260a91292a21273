"""`polaris fleet up|down|status`: the workers as background processes on this machine.

One process-tier worker (Faust) and one worker per sink the topology uses, each with its
own pid file and log under `stack_home/run`, stopped exactly like the stack's services.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from schemas.topology import load_topology
from workers.settings import Settings
from workers.stack.process import ManagedProcess, StackError

Say = Callable[[str], None]


def roles(settings: Settings) -> list[list[str]]:
    sinks = sorted(load_topology(settings.topology_file).used_sinks())
    return [["process"], *(["sink", name] for name in sinks)]


def _process(settings: Settings, role: list[str]) -> ManagedProcess:
    return ManagedProcess("worker-" + "-".join(role), settings.stack_home / "run", stop_grace_s=20)


def up(settings: Settings, say: Say) -> None:
    for index, role in enumerate(roles(settings)):
        process = _process(settings, role)
        # Many workers on one host: each its own /metrics port (base + its index).
        port = settings.metrics_port + index if settings.metrics_port else 0
        pid = process.start([sys.executable, "-m", "workers.cli", "worker", *role],
                            env={"POLARIS_METRICS_PORT": str(port)})
        say(f"  {process.name:<22} pid {pid}, log {process.log_file}")
    time.sleep(2)
    dead = [p for p in (_process(settings, r) for r in roles(settings)) if p.exited_early()]
    if dead:
        raise StackError("\n".join(f"{p.name} exited at start; last lines:\n{p.log_tail()}" for p in dead))


def down(settings: Settings, say: Say) -> None:
    for role in reversed(roles(settings)):
        process = _process(settings, role)
        say(f"  {process.name:<22} {'stopped' if process.stop() else 'was not running'}")


def status(settings: Settings, say: Say) -> bool:
    running = True
    for role in roles(settings):
        process = _process(settings, role)
        pid = process.pid()
        running &= pid is not None
        say(f"  {process.name:<22} {'running, pid ' + str(pid) if pid else 'stopped'}")
    return running
