"""The `polaris` command.

    polaris stack up|down|status [SERVICE ...]   the local stack of real services
    polaris fleet up|down|status                 all workers in the background (logs in .polaris/run)
    polaris worker process                       the process tier (Faust agents)
    polaris worker sink NAME                     one sink's consumer group (postgres|weaviate|neo4j|redis)
    polaris demo [--lines N]                     stack + fleet + a Loghub replay, then counts per store
    polaris topics create                        create the topology's topics (and their .dlq)
    polaris db migrate                           apply SQL migrations to PostgreSQL
    polaris topology validate FILE               check a topology file
    polaris verify [--repair]                    stores vs records.enriched: drift, and re-sink what is missing
    polaris chaos [--records N] [--kills K]      exactly-once under kill -9: lost / doubled records
    polaris bench process                        process-tier speed beside a bare consumer
    polaris bench sinks [--records N] [--e2e]    records/s per store (fenced writes); --e2e: through the fleet
    polaris eval NAME ...                        benchmarks of the pure steps on real data
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from workers import evals
from workers.settings import SettingsError, get_settings
from workers.stack.process import StackError


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _stack(args: argparse.Namespace) -> int:
    from workers.stack import manager

    settings = get_settings()
    if args.action == "up":
        manager.up(settings, args.services, _say, timeout_s=args.timeout)
        return 0
    if args.action == "down":
        manager.down(settings, args.services, _say)
        return 0
    return 0 if manager.status(settings, args.services, _say) else 1


def _topics(args: argparse.Namespace) -> int:
    from workers.topics import ensure_topics

    created = ensure_topics(get_settings())
    _say(f"created {len(created)} topic(s): {', '.join(created) or 'all present'}")
    return 0


def _fleet(args: argparse.Namespace) -> int:
    from workers import fleet

    settings = get_settings()
    if args.action == "up":
        fleet.up(settings, _say)
        return 0
    if args.action == "down":
        fleet.down(settings, _say)
        return 0
    return 0 if fleet.status(settings, _say) else 1


def _worker(args: argparse.Namespace) -> int:
    if args.role == "process":
        from workers.app import run_process_worker

        return run_process_worker(get_settings())
    from workers.sink_runner import run_sink_worker

    return run_sink_worker(get_settings(), args.sink)


def _demo(args: argparse.Namespace) -> int:
    from workers.demo import run_demo

    return run_demo(get_settings(), lines_per_system=args.lines, keep_running=args.keep_running)


def _db(args: argparse.Namespace) -> int:
    import asyncio

    from sinks.postgres import migrate

    applied = asyncio.run(migrate(get_settings().postgres_dsn.get_secret_value()))
    _say(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


def _topology(args: argparse.Namespace) -> int:
    from schemas.topology import load_topology

    topology = load_topology(Path(args.file))
    _say(f"{args.file}: ok ({len(topology.all_topics())} topics, {len(topology.routes)} routes, "
         f"sinks {sorted(topology.used_sinks())})")
    return 0


def _chaos(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from workers.chaos import print_report, run_chaos

    report = run_chaos(get_settings(), _say, records=args.records, kills=args.kills, seed=args.seed)
    print_report(report, _say)
    if args.json:
        Path(args.json).write_text(json.dumps(dataclasses.asdict(report), indent=2) + "\n")
    return 1 if report.failures() else 0


def _verify(args: argparse.Namespace) -> int:
    from workers.verify import run

    return run(get_settings(), topic=args.topic, bucket_minutes=args.bucket_minutes, sample=args.sample,
               repair=args.repair, json_file=Path(args.json) if args.json else None, say=_say)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polaris", description="Polaris Stream: operations data on Kafka.")
    commands = parser.add_subparsers(dest="command", required=True)

    stack = commands.add_parser("stack", help="the local stack of real services")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.add_argument("services", nargs="*", help="only these (kafka postgres redis neo4j weaviate prometheus)")
    stack.add_argument("--timeout", type=float, default=240, help="seconds to wait for readiness")
    stack.set_defaults(func=_stack)

    topics = commands.add_parser("topics", help="Kafka topics of the topology")
    topics.add_argument("action", choices=["create"])
    topics.set_defaults(func=_topics)

    fleet = commands.add_parser("fleet", help="all workers as background processes")
    fleet.add_argument("action", choices=["up", "down", "status"])
    fleet.set_defaults(func=_fleet)

    worker = commands.add_parser("worker", help="run one worker of the fleet")
    roles = worker.add_subparsers(dest="role", required=True)
    roles.add_parser("process", help="parse, enrich and route raw records (Faust)")
    sink = roles.add_parser("sink", help="write enriched records into one store")
    sink.add_argument("sink", choices=["postgres", "weaviate", "neo4j", "redis"])
    worker.set_defaults(func=_worker)

    demo = commands.add_parser("demo", help="stack up, fleet up, replay Loghub samples, show the stores")
    demo.add_argument("--lines", type=int, default=200, help="lines per Loghub system to replay")
    demo.add_argument("--keep-running", action="store_true", help="leave the fleet running afterwards")
    demo.set_defaults(func=_demo)

    db = commands.add_parser("db", help="PostgreSQL schema")
    db.add_argument("action", choices=["migrate"])
    db.set_defaults(func=_db)

    topology = commands.add_parser("topology", help="topology files")
    topology.add_argument("action", choices=["validate"])
    topology.add_argument("file")
    topology.set_defaults(func=_topology)

    chaos = commands.add_parser("chaos", help="kill -9 a private fleet under load; count lost and doubled records")
    chaos.add_argument("--records", type=int, default=20_000, help="mixed raw records to publish")
    chaos.add_argument("--kills", type=int, default=5, help="SIGKILLs of each worker (one per wave)")
    chaos.add_argument("--seed", type=int, default=None, help="seed of the kill moments (default: per run)")
    chaos.add_argument("--json", help="also write the figures to this file")
    chaos.set_defaults(func=_chaos)

    verify = commands.add_parser("verify", help="compare the stores with the enriched topic; report drift")
    verify.add_argument("--repair", action="store_true", help="re-sink missing records from Kafka, then compare again")
    verify.add_argument("--topic", default=None, help="enriched topic (default: the topology's, records.enriched)")
    verify.add_argument("--bucket-minutes", type=int, default=60, help="width of the per-time-bucket count table")
    verify.add_argument("--sample", type=int, default=10, help="random due ids also looked up one by one")
    verify.add_argument("--json", help="also write the figures to this file")
    verify.set_defaults(func=_verify)

    bench = commands.add_parser("bench", help="benchmarks: print figures, save JSON")
    from workers import bench as benches

    bench_kinds = bench.add_subparsers(dest="bench", required=True)
    benches.register(bench_kinds)
    from workers.bench import sinks as sink_bench

    bench_sinks = bench_kinds.add_parser("sinks", help="records/s per store with fencing; --e2e: raw topics to stores")
    sink_bench.add_arguments(bench_sinks)
    bench_sinks.set_defaults(bench_run=sink_bench.run)
    bench.set_defaults(func=lambda args: args.bench_run(args))

    evaluation = commands.add_parser("eval", help="score the pure steps on real data")
    evals.register(evaluation.add_subparsers(dest="name", required=True))
    evaluation.set_defaults(func=lambda args: args.eval_run(args))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # weaviate-client imports authlib, which warns about its own httpx module on every run.
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")
    args = build_parser().parse_args(argv)
    from workers.logs import configure_logging

    try:
        configure_logging(get_settings().log_level)
        return int(args.func(args))
    except (SettingsError, StackError) as exc:
        print(f"polaris: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from aiokafka.errors import KafkaConnectionError

        from schemas.topology import TopologyError

        if isinstance(exc, TopologyError):
            print(f"polaris: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, KafkaConnectionError):
            print(f"polaris: cannot reach Kafka at {get_settings().kafka_bootstrap} ({exc}); "
                  "start the stack with `scripts/polaris stack up` or set POLARIS_KAFKA_BOOTSTRAP",
                  file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
