"""`polaris eval templates DIR`: template mining scored on Loghub-style data.

For each ``DIR/<System>/<System>_2k.log_structured.csv`` the ``Content`` column
is mined in line order by a fresh `TemplateMiner`; every line is then labelled
with the *final* template of the group it joined (groups generalise and merge as
the stream goes on, as in Drain's own benchmark). Scores (Zhu et al., ICSE-SEIP
2019; Khan et al., ICSE 2022):

- GA: a line is correct when its predicted group holds exactly the lines that
  share its ground-truth EventId. Predicted groups are template texts, which is
  what the template id is derived from.
- PA: a line is correct when its template equals the ground-truth EventTemplate
  after `normalise_template` on both sides: whitespace runs collapse to one
  space and adjacent wildcards (``<*><*>``) collapse to one, the DS and CV rules
  of the Loghub-2.0 benchmark. Its other rules (joining ``<*>.<*>``, ``<*>:<*>``
  ...) are not applied: the ground truth here keeps those forms.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from workers.evals import SHARED_DATA
from workers.steps.templates import TemplateMiner, template_id

HELP = "score streaming template mining (GA, PA, lines/s) on Loghub-style data"
SUFFIX = "_2k.log_structured.csv"

_SPACES = re.compile(r"\s+")
_WILDCARD_RUN = re.compile(r"(?:<\*>)+")
# Loghub-2.0 template correction rules, written from their description.
_PATH_SPLIT = re.compile(r"([\s,!;:=|\"'\[\](){}])")
_TOKEN_SPLIT = re.compile(r"([\s,!;:=|\"'\[\](){}.\-+@#$%&])")
_PATH = re.compile(r"^(?:/[^/]+)+$")
_DIGITS = re.compile(r"^\d+$")
_WITH_WILDCARD = re.compile(r"^[^\s/]*<\*>[^\s/]*$")
_JOINED = re.compile(r"<\*>(?:[.:#/@]?<\*>)+")
_SPECIAL = frozenset({"true", "false", "null", "root"})


@dataclass(frozen=True, slots=True)
class SystemScore:
    system: str
    lines: int
    ga: float
    pa: float
    pa_loghub2: float
    templates_mined: int
    templates_truth: int
    lines_per_s: float


def normalise_template(template: str) -> str:
    """Collapse whitespace runs and adjacent ``<*>`` (Loghub-2.0 DS + CV rules)."""
    return _WILDCARD_RUN.sub("<*>", _SPACES.sub(" ", template.strip()))


def loghub2_template(template: str) -> str:
    """Loghub-2.0 correction rules: DS, PS, BL/US, DG, WV, then DV/CV joins.

    Paths, digit-only tokens, true/false/null/root and tokens with a wildcard
    inside become ``<*>``; wildcards joined by nothing or one of ``. : # / @``
    become one. Applied to both sides it makes PA insensitive to the labelling
    conventions that differ between systems (``0.0`` as one or two variables).
    """
    text = _SPACES.sub(" ", template.strip())
    text = "".join("<*>" if _PATH.match(t) else t for t in _PATH_SPLIT.split(text))
    tokens = _TOKEN_SPLIT.split(text)
    text = "".join("<*>" if _is_variable_token(t) else t for t in tokens)
    return _JOINED.sub("<*>", text).replace(" #<*> ", " <*> ")


def _is_variable_token(token: str) -> bool:
    if token.lower() in _SPECIAL or _DIGITS.match(token):
        return True
    return bool(_WITH_WILDCARD.match(token)) and token != "<*>/<*>"


def grouping_accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Share of lines whose predicted group is exactly their ground-truth group."""
    if not truth:
        return 0.0
    truth_sizes = Counter(truth)
    members: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for event, group in zip(truth, predicted, strict=True):
        members[group][event] += 1
    correct = 0
    for events in members.values():
        if len(events) == 1:
            ((event, count),) = events.items()
            if truth_sizes[event] == count:
                correct += count
    return correct / len(truth)


def parsing_accuracy(
    truth: Sequence[str], predicted: Sequence[str], normalise: Callable[[str], str] | None = None
) -> float:
    """Share of lines whose template equals the ground truth after `normalise`."""
    if not truth:
        return 0.0
    norm = normalise or normalise_template
    cache: dict[str, str] = {}
    pairs = zip(truth, predicted, strict=True)
    correct = sum(_cached(norm, t, cache) == _cached(norm, p, cache) for t, p in pairs)
    return correct / len(truth)


def _cached(normalise: Callable[[str], str], template: str, cache: dict[str, str]) -> str:
    if template not in cache:
        cache[template] = normalise(template)
    return cache[template]


def discover(root: Path) -> list[Path]:
    """Structured CSVs of every system folder under `root`, sorted by system."""
    return sorted(root.glob(f"*/*{SUFFIX}"))


def read_structured(path: Path) -> tuple[list[str], list[str], list[str], list[str]]:
    """LineId, Content, EventId and EventTemplate columns of one system."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return (
        [r["LineId"] for r in rows],
        [r["Content"] for r in rows],
        [r["EventId"] for r in rows],
        [r["EventTemplate"] for r in rows],
    )


def mine(contents: Sequence[str]) -> tuple[list[str], float]:
    """Final template of every line, mined in order, and the mining time in s."""
    miner = TemplateMiner()
    started = time.perf_counter()
    ids = [miner.add(content).template_id for content in contents]
    seconds = time.perf_counter() - started
    final = {tid: miner.current_template(tid) or "" for tid in set(ids)}
    return [final[tid] for tid in ids], seconds


def score_system(system: str, truth_ids: Sequence[str], truth_templates: Sequence[str],
                 predicted: Sequence[str], seconds: float) -> SystemScore:
    return SystemScore(
        system=system,
        lines=len(predicted),
        ga=grouping_accuracy(truth_ids, [template_id(t) for t in predicted]),
        pa=parsing_accuracy(truth_templates, predicted),
        pa_loghub2=parsing_accuracy(truth_templates, predicted, loghub2_template),
        templates_mined=len(set(predicted)),
        templates_truth=len(set(truth_ids)),
        lines_per_s=len(predicted) / seconds if seconds > 0 else 0.0,
    )


def write_predictions(path: Path, line_ids: Sequence[str], templates: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["LineId", "EventTemplate"])
        writer.writerows(zip(line_ids, templates, strict=True))


def summarise(scores: Sequence[SystemScore]) -> dict[str, float]:
    """Mean GA and PA over systems, and overall throughput."""
    n = len(scores) or 1
    seconds = sum(s.lines / s.lines_per_s for s in scores if s.lines_per_s > 0)
    return {
        "ga": sum(s.ga for s in scores) / n,
        "pa": sum(s.pa for s in scores) / n,
        "pa_loghub2": sum(s.pa_loghub2 for s in scores) / n,
        "lines_per_s": sum(s.lines for s in scores) / seconds if seconds > 0 else 0.0,
    }


def format_table(scores: Sequence[SystemScore]) -> str:
    header = f"{'system':<12}{'lines':>7}{'GA':>8}{'PA':>8}{'PA-L2':>8}{'mined':>7}{'truth':>7}{'lines/s':>10}"
    rows = [header, "-" * len(header)]
    for s in scores:
        rows.append(
            f"{s.system:<12}{s.lines:>7}{s.ga:>8.3f}{s.pa:>8.3f}{s.pa_loghub2:>8.3f}"
            f"{s.templates_mined:>7}{s.templates_truth:>7}{s.lines_per_s:>10.0f}"
        )
    mean = summarise(scores)
    rows.append("-" * len(header))
    rows.append(
        f"{'mean':<12}{sum(s.lines for s in scores):>7}{mean['ga']:>8.3f}{mean['pa']:>8.3f}"
        f"{mean['pa_loghub2']:>8.3f}"
        f"{'':>14}{mean['lines_per_s']:>10.0f}"
    )
    return "\n".join(rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", type=Path, default=SHARED_DATA / "loghub",
                        help="folder with <System>/<System>_2k.log_structured.csv")
    parser.add_argument("--json", type=Path, help="also write the scores to this JSON file")
    parser.add_argument("--predictions", type=Path,
                        help="write <System>_2k.log_structured.csv (LineId,EventTemplate) here")


def run(args: argparse.Namespace) -> int:
    paths = discover(args.dir)
    if not paths:
        print(f"no */*{SUFFIX} under {args.dir}")
        return 2
    scores = []
    for path in paths:
        system = path.parent.name
        line_ids, contents, event_ids, truth_templates = read_structured(path)
        predicted, seconds = mine(contents)
        scores.append(score_system(system, event_ids, truth_templates, predicted, seconds))
        if args.predictions:
            write_predictions(args.predictions / path.name, line_ids, predicted)
    print(format_table(scores))
    if args.json:
        report = {"systems": [asdict(s) for s in scores], "mean": summarise(scores)}
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0
