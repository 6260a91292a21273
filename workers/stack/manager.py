"""`polaris stack up|down|status`: install (cached), start, probe and stop the local stack."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from workers.settings import Settings
from workers.stack.process import StackError, group_rss_bytes
from workers.stack.services import Service, all_services

Say = Callable[[str], None]


def select(settings: Settings, names: Sequence[str] | None) -> list[Service]:
    services = all_services(settings)
    if not names:
        return services
    known = {service.name: service for service in services}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise StackError(f"unknown service(s) {unknown}; known: {sorted(known)}")
    return [known[name] for name in names]


def install(services: Sequence[Service], say: Say) -> None:
    """Install in parallel (Maven, Go and apt are independent); report every failure."""
    def one(service: Service) -> str | None:
        started = time.monotonic()
        try:
            service.install()
        except StackError as exc:
            return str(exc)
        say(f"  {service.name:<10} installed ({time.monotonic() - started:.1f}s)")
        return None

    with ThreadPoolExecutor(max_workers=len(services) or 1) as pool:
        failures = [error for error in pool.map(one, services) if error]
    if failures:
        raise StackError("install failed:\n" + "\n".join(failures))


def up(settings: Settings, names: Sequence[str] | None, say: Say, timeout_s: float = 180) -> None:
    services = select(settings, names)
    started_at = time.monotonic()
    say("installing (cached after the first run) ...")
    install(services, say)
    for service in services:
        if service.ready() and service.process.pid() is None:
            raise StackError(f"{service.name}: something else already answers on {service.addresses()}; "
                             "stop it or change the port setting")
        service.start()
    pending = {service.name: service for service in services}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for name, service in list(pending.items()):
            if service.process.exited_early():
                raise StackError(f"{name} exited during start-up; last lines of "
                                 f"{service.process.log_file}:\n{service.process.log_tail()}")
            if service.ready():
                service.after_ready()
                say(f"  {name:<10} up at {service.addresses()} ({time.monotonic() - started_at:.1f}s)")
                del pending[name]
        time.sleep(0.25)
    if pending:
        details = "\n".join(f"{s.name}: not ready after {timeout_s:.0f}s; log {s.process.log_file}:\n"
                            f"{s.process.log_tail()}" for s in pending.values())
        raise StackError(details)
    from workers.topics import ensure_topics  # late import: aiokafka only once Kafka is up

    if any(service.name == "kafka" for service in services):
        created = ensure_topics(settings)
        say(f"  topics     {len(created)} created" if created else "  topics     present")
    say(f"stack up in {time.monotonic() - started_at:.1f}s")


def down(settings: Settings, names: Sequence[str] | None, say: Say) -> None:
    # Reverse order: stores after the broker's clients are gone.
    for service in reversed(select(settings, names)):
        stopped = service.process.stop()
        say(f"  {service.name:<10} {'stopped' if stopped else 'was not running'}")


def status(settings: Settings, names: Sequence[str] | None, say: Say) -> bool:
    healthy, total_rss = True, 0
    for service in select(settings, names):
        pid, ready = service.process.pid(), service.ready()
        state = "up" if ready and pid else ("up (not ours)" if ready else ("starting" if pid else "down"))
        healthy &= ready
        rss = group_rss_bytes(pid) if pid else 0
        total_rss += rss
        memory = f"  rss {rss / 2**20:6.0f} MiB  pid {pid}" if pid else ""
        say(f"  {service.name:<10} {state:<14} {service.addresses():<48}{memory}")
    say(f"  {'total':<10} {'':<14} {'':<48}  rss {total_rss / 2**20:6.0f} MiB")
    return healthy
