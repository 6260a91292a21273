"""`polaris eval parse DIR`: score format detection + parsing against Loghub ground truth.

For every system folder ``DIR/<System>/`` holding ``<name>.log`` and
``<name>.log_structured.csv``, each raw line goes through ``parse_line`` with detection
alone (no format hint) and is compared with its ground-truth row (matched by LineId,
the 1-based line number):

- message:   parsed message == ``Content``.  Loghub made ``Content`` from the stripped
             line, so both sides are compared as produced; no per-line special cases.
- level:     normalised parsed level == normalised ``Level`` column.  Applicable only
             where the ground-truth value is a level word: Loghub's Linux "Level" column
             holds the host name ("combo"), which no parser can match as a level.
- component: parsed service == ``Component`` column, exact.
- all:       every applicable check of the line holds.
- lines/s:   lines per CPU-second of this process (process_time, best of --repeat
             passes, timestamp caches cleared before each), so other load on a shared
             machine does not distort it; one core, detection only, no format hint.

Component mismatches are classified in a note under the table, because some Loghub
header columns are named for position, not meaning: OpenSSH's "Component" is the host
column, and ZooKeeper's splits "thread:Class" at the FIRST colon of the thread name
("QuorumPeer[myid=1]/0" / "0:0:...:2181:FastLeaderElection").
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from workers.evals import SHARED_DATA
from workers.steps.log_timestamps import clear_caches
from workers.steps.parse import ParsedLine, Parser, default_parser

HELP = "score log format detection/parsing on Loghub-style folders (message/level/component)"

CSV_FIELDS = ("System", "LineId", "format", "level", "component", "message_ok", "level_ok",
              "component_ok")


@dataclass(frozen=True, slots=True)
class SystemScore:
    system: str
    lines: int
    top_format: str
    top_format_share: float
    message_ok: float
    level_ok: float | None        # None: no applicable level column
    level_applicable: int
    component_ok: float | None
    component_applicable: int
    all_ok: float
    lines_per_second: float
    component_mismatches: dict[str, int]  # reason -> lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", type=Path, default=SHARED_DATA / "loghub",
                        help="folder of <System>/<name>.log + <name>.log_structured.csv")
    parser.add_argument("--json", type=Path, help="also write the scores as JSON here")
    parser.add_argument("--output", type=Path, help="write per-line results as CSV here")
    parser.add_argument("--repeat", type=int, default=3,
                        help="timing passes per system; the fastest is reported (default 3)")


def find_systems(root: Path) -> Iterator[tuple[str, Path, Path]]:
    """(system, raw log, structured csv) for every folder of the Loghub layout."""
    for raw_log in sorted(root.glob("*/*.log")):
        structured = raw_log.with_name(raw_log.name + "_structured.csv")
        if not structured.is_file():
            continue
        with structured.open(encoding="utf-8", newline="") as handle:
            header = next(csv.reader(handle), [])
        if {"LineId", "Content"} <= set(header):
            yield raw_log.parent.name, raw_log, structured
        else:
            print(f"skipping {structured}: no LineId/Content columns")


def read_raw_lines(path: Path) -> list[str]:
    # Split on "\n" only, as a shipper does; str.splitlines would also split on
    # \x0b, \x1c, \u2028 ... that may sit inside a log message.
    data = path.read_bytes().decode("utf-8", errors="replace")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def _ground_truth_level(parser: Parser, raw: str | None) -> str | None:
    if raw is None:
        return None
    key = raw.strip().lower()
    aliases = parser.catalog.level_aliases
    return aliases.get(key) or parser.catalog.numeric_levels.get(key)


def _share(hits: int, total: int) -> float:
    return hits / total if total else 0.0


def score_system(
    parser: Parser, system: str, raw_log: Path, structured: Path,
    per_line: list[dict[str, object]] | None, repeat: int = 1,
) -> SystemScore:
    lines = read_raw_lines(raw_log)
    with structured.open(encoding="utf-8", newline="") as handle:
        truth = list(csv.DictReader(handle))
    elapsed = float("inf")
    parsed_lines: list[ParsedLine] = []
    for _ in range(max(1, repeat)):
        clear_caches()  # each pass decodes timestamps cold, as a fresh stream would
        started = time.process_time()
        parsed_lines = [parser.parse(line) for line in lines]
        elapsed = min(elapsed, time.process_time() - started)

    formats: Counter[str] = Counter()
    mismatches: Counter[str] = Counter()
    message_hits = level_hits = level_total = component_hits = component_total = all_hits = 0
    for row in truth:
        index = int(row["LineId"]) - 1
        parsed = parsed_lines[index] if 0 <= index < len(parsed_lines) else None
        if parsed is None:
            continue  # counted as a miss: the raw line is missing
        formats[parsed.format] += 1
        message_ok = parsed.message == row["Content"]
        expected_level = _ground_truth_level(parser, row.get("Level"))
        level_ok = None if expected_level is None else parsed.level == expected_level
        component_ok = None if "Component" not in row else parsed.service == row["Component"]
        if component_ok is False:
            mismatches[_mismatch_reason(parsed, row["Component"])] += 1
        message_hits += message_ok
        if level_ok is not None:
            level_total += 1
            level_hits += level_ok
        if component_ok is not None:
            component_total += 1
            component_hits += component_ok
        all_hits += message_ok and level_ok is not False and component_ok is not False
        if per_line is not None:
            per_line.append({
                "System": system, "LineId": row["LineId"], "format": parsed.format,
                "level": parsed.level or "", "component": parsed.service or "",
                "message_ok": int(message_ok),
                "level_ok": "" if level_ok is None else int(level_ok),
                "component_ok": "" if component_ok is None else int(component_ok),
            })
    total = len(truth)
    top_format, top_count = formats.most_common(1)[0] if formats else ("-", 0)
    return SystemScore(
        system=system,
        lines=total,
        top_format=top_format,
        top_format_share=_share(top_count, total),
        message_ok=_share(message_hits, total),
        level_ok=_share(level_hits, level_total) if level_total else None,
        level_applicable=level_total,
        component_ok=_share(component_hits, component_total) if component_total else None,
        component_applicable=component_total,
        all_ok=_share(all_hits, total),
        lines_per_second=len(lines) / elapsed if elapsed > 0 else float("inf"),
        component_mismatches=dict(mismatches),
    )


def _mismatch_reason(parsed: ParsedLine, expected: str) -> str:
    if parsed.host is not None and expected == parsed.host:
        return "ground truth is the parsed host"
    if parsed.service and expected.endswith(parsed.service):
        return "ground truth is a longer prefix + the parsed service"
    return "other"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def print_table(scores: list[SystemScore], total_lines: int, total_seconds: float) -> None:
    header = (f"{'system':<10} {'lines':>5}  {'format (share)':<22} {'message':>8} "
              f"{'level':>8} {'(n)':>6} {'component':>9} {'(n)':>6} {'all':>7} {'lines/s':>9}")
    print(header)
    print("-" * len(header))
    for s in scores:
        detected = f"{s.top_format} ({100 * s.top_format_share:.0f}%)"
        print(f"{s.system:<10} {s.lines:>5}  {detected:<22} {_percent(s.message_ok):>8} "
              f"{_percent(s.level_ok):>8} {s.level_applicable:>6} "
              f"{_percent(s.component_ok):>9} {s.component_applicable:>6} "
              f"{_percent(s.all_ok):>7} {s.lines_per_second:>9,.0f}")
    for s in scores:
        for reason, count in sorted(s.component_mismatches.items()):
            print(f"note: {s.system}: component mismatch on {count} lines: {reason}")
    rate = total_lines / total_seconds if total_seconds > 0 else float("inf")
    print(f"total: {total_lines} lines in {total_seconds:.3f}s of parsing = {rate:,.0f} lines/s")


def run(args: argparse.Namespace) -> int:
    root: Path = args.dir
    systems = list(find_systems(root))
    if not systems:
        print(f"no <System>/<name>.log + <name>.log_structured.csv under {root}")
        return 2
    parser = default_parser()
    per_line: list[dict[str, object]] | None = [] if args.output else None
    scores = [score_system(parser, *system, per_line, args.repeat) for system in systems]
    total_lines = sum(s.lines for s in scores)
    total_seconds = sum(s.lines / s.lines_per_second for s in scores if s.lines_per_second)
    print_table(scores, total_lines, total_seconds)
    if args.json:
        document = {"systems": [asdict(s) for s in scores], "total_lines": total_lines,
                    "lines_per_second": total_lines / total_seconds if total_seconds else None}
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.output and per_line is not None:
        with args.output.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
            writer.writeheader()
            writer.writerows(per_line)
    return 0
