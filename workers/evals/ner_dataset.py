"""Build the labelled NER set `tests/data/ner_labelled.jsonl` from the Loghub-2k samples.

Rerun with ``python -m workers.evals.ner_dataset [--per-event 4] [--per-system 250]``.

How a line gets its labels:

1. The ground-truth EventTemplate is aligned to the Content (each ``<*>`` becomes a
   lazy group), which gives the *variable* spans that the Loghub authors marked.
2. Each variable span is typed by the context rules in `_type_variable` (the literal
   text before it, the value's own form, the whitespace-delimited word around it).
3. A few entities are constant text in the template (service names, exception
   classes, error codes); `_constant_entities` finds them with a fixed lexicon.
4. Overlaps are resolved outer-first (a URL or PATH swallows the IP/UUID inside it).

The rules here are for *building* the set and were checked by hand (see
tests/data/ner_labelled.README.md). The extractor in workers/steps/entities.py is
written separately from its own pattern file; where both rely on the same regular
form (dotted-quad IPs, UUIDs, ``*Exception`` class names) that is said in the README.
Hand-written lines (Kubernetes, databases, HTTP) are appended from
`tests/data/ner_handwritten.jsonl`.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from workers.evals import REPO_ROOT, SHARED_DATA

SYSTEMS = ("HDFS", "Apache", "OpenSSH", "Linux", "Zookeeper", "Spark", "Hadoop", "BGL")
OUTPUT = REPO_ROOT / "tests" / "data" / "ner_labelled.jsonl"
HANDWRITTEN = REPO_ROOT / "tests" / "data" / "ner_handwritten.jsonl"

Span = tuple[int, int, str]

# A dotted quad standing alone (not inside an identifier such as "BP-1-10.1.1.1-99").
IPV4 = re.compile(r"(?<![\w.-])(?:\d{1,3}\.){3}\d{1,3}(?![\w-]|\.\d)")
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*")
FQDN = re.compile(r"(?:[A-Za-z0-9-]+\.)+(?:com|net|org|om|edu|cn|de|uk|jp|ru|br|kr|local)")
EXCEPTION = re.compile(r"\b(?:[a-z_][\w]*\.)*[A-Z]\w*(?:Exception|Error)\b")
WINDOWS_PATH = re.compile(r"[A-Z]:\\[^\s,;]+")
URL_WORD = re.compile(r"(?:[a-z][a-z0-9+.-]*:)+(?://)?[^\s\]\[(),;'\"]+")
# Daemons named as constant text in the templates (Linux init lines, pam, hadoop).
SERVICES = (
    "sshd",
    "cupsd",
    "ftpd",
    "hcid",
    "irqbalance",
    "klogd",
    "syslogd",
    "portmap",
    "sdpd",
    "rpc.statd",
    "rpc.idmapd",
    "xinetd",
    "crond",
    "named",
    "sendmail",
    "gpm",
    "atd",
    "nfslock",
    "netfs",
    "apmd",
    "smartd",
    "iiim",
    "anacron",
    "ntpd",
    "bluetooth",
    "MRAppMaster",
    "ResourceManager",
    "NodeManager",
    "NameNode",
    "DataNode",
    "ZooKeeperServer",
)
SERVICE_WORD = re.compile(r"(?<![\w.-])(?:" + "|".join(map(re.escape, SERVICES)) + r")(?![\w-])")
ERROR_CODE_CONTEXT = re.compile(
    r"(?:errno=|code=|KeeperErrorCode = |exited abnormally with \[|terminated for reason )$"
)
SESSION_CONTEXT = re.compile(
    r"(?:session|sessionid:?|sessionid|Revalidating client:|session termination for sessionid:)"
    r"\s*$"
)
# Users named after these words, whether the name is a variable or constant template text.
USER_AFTER = re.compile(
    r"(?i:\binvalid user |\bpassword for |\bnone for |\bfor user |\buser=|"
    r"\bfailures for )(?!invalid\b|unknown\b)([\w.-]+)"
)
USER_LIST_AFTER = re.compile(r"(?:\bacls to: |permissions: Set\()([\w.-]+(?:, ?[\w.-]+)*)")
HOST_CONTEXT = re.compile(
    r"(?:\bon host |\brhost=|getaddrinfo for |\bResolved |\bconnect to server: |host\.name=)$"
)
WORD_STRIP = "[](){}<>,;'\""


def template_regex(template: str) -> re.Pattern[str]:
    """`<*>` -> lazy group; literal whitespace runs match any whitespace run."""
    parts = template.split("<*>")
    literal = [r"\s+".join(re.escape(w) for w in re.split(r"\s+", p)) for p in parts]
    return re.compile("(.*?)".join(literal) + r"\Z", re.DOTALL)


def variable_spans(content: str, template: str) -> list[tuple[int, int]]:
    match = template_regex(template).match(content)
    if match is None:
        return []
    return [
        match.span(i) for i in range(1, (match.lastindex or 0) + 1) if match.end(i) > match.start(i)
    ]


def enclosing_word(text: str, start: int, end: int) -> tuple[int, int]:
    """The whitespace-delimited word around [start, end), without brackets/trailing dots."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    while start < end and text[start] in WORD_STRIP + ":":
        start += 1
    while end > start and text[end - 1] in WORD_STRIP + ".:":
        end -= 1
    return start, end


def _type_variable(text: str, start: int, end: int, spans: list[Span]) -> None:
    value = text[start:end]
    before = text[:start]
    word_start, word_end = enclosing_word(text, start, end)
    word = text[word_start:word_end]
    if URL_WORD.fullmatch(word) and ("://" in word or word.startswith("jar:")):
        split_suffix = re.search(r":\d+\+\d+$", word)  # Spark "file:offset+length"
        spans.append((word_start, word_end - (len(split_suffix[0]) if split_suffix else 0), "URL"))
        return
    if (word.startswith("/") and "/" in word[1:] and not IPV4.match(word, 1)) or (
        WINDOWS_PATH.fullmatch(word)
    ):
        spans.append((word_start, word_end, "PATH"))
        return
    for ip in IPV4.finditer(value):
        spans.append((start + ip.start(), start + ip.end(), "IP"))
    if IPV4.fullmatch(value):
        return
    port_words = (" port ", "Server created on ", "Web app /mapreduce started at ")
    if (
        value.isdigit()
        and len(value) <= 5
        and (before.endswith(port_words) or _after_address(before))
    ):
        spans.append((start, end, "PORT"))
    elif UUID.fullmatch(value) or (value.startswith("0x") and SESSION_CONTEXT.search(before)):
        spans.append((start, end, "REQUEST_ID"))
    elif ERROR_CODE_CONTEXT.search(before) or re.search(r"disconnect from \S+: $", before):
        code = re.match(r"-?\d+|\w+", value)  # "1001rts: bad message" -> "1001" (run-on line)
        if code:
            spans.append((start, start + len(code[0]), "ERROR_CODE"))
    elif before.endswith("MININT-"):  # Hadoop's "MININT-<*>" hosts, "/ip" or ":port" after
        host_end = word_start + len(re.split(r"[/:]", word)[0])
        spans.append((start - len("MININT-"), max(end, host_end), "HOST"))
    elif (
        HOST_CONTEXT.search(before) or FQDN.fullmatch(value) or re.match(r"/\d+\.\d+\.", text[end:])
    ) and HOSTNAME.fullmatch(value):  # keyword before it, a known TLD, or "host/ip" after it
        spans.append((start, end, "HOST"))
    elif HOSTNAME.fullmatch(value) and re.match(r":\d", text[end:]) and not value.isdigit():
        spans.append((start, end, "HOST"))  # "msra-sa-41:9000" -> host before a port
    for exc in EXCEPTION.finditer(value):
        spans.append((start + exc.start(), start + exc.end(), "EXCEPTION"))


def _after_address(before: str) -> bool:
    """True when `before` ends with `<ip or host>:` (so the next number is a port)."""
    # a host must look like one ("msra-sa-41", "a.b.com"), not a key ("PendingReds:", "memory:")
    host = r"[A-Za-z][\w]*[-.][\w.-]*[A-Za-z0-9]"
    return re.search(r"(?:(?:\d{1,3}\.){3}\d{1,3}|" + host + r"):$", before) is not None


# Paths and URLs also occur as constant template text ("log source = /proc/kmsg").
CONSTANT_PATH = re.compile(r"(?:(?<=[\s:=(\[])|^)/[\w.~+-]+(?:/[\w.~+-]*)+")
CONSTANT_URL = re.compile(r"\bhttps?://[^\s\])]+")


def _constant_entities(text: str, spans: list[Span]) -> None:
    for match in CONSTANT_PATH.finditer(text):
        if not IPV4.match(text, match.start() + 1):
            spans.append((match.start(), match.start() + len(match[0].rstrip(".")), "PATH"))
    for match in re.finditer(r"(?<=[\s@=])" + FQDN.pattern + r"\b(?![\w.-])", text):
        spans.append((match.start(), match.end(), "HOST"))
    for match in re.finditer(r"(?<=host\.name=)[\w.-]+", text):
        spans.append((match.start(), match.end(), "HOST"))
    for match in CONSTANT_URL.finditer(text):
        spans.append((match.start(), match.end(), "URL"))
    for match in re.finditer(r"(?<=\bport )\d{1,5}\b", text):
        spans.append((match.start(), match.end(), "PORT"))
    for match in EXCEPTION.finditer(text):
        spans.append((match.start(), match.end(), "EXCEPTION"))
    for match in SERVICE_WORD.finditer(text):
        spans.append((match.start(), match.end(), "SERVICE"))
    for match in USER_AFTER.finditer(text):
        spans.append((match.start(1), match.end(1), "USER"))
    for match in USER_LIST_AFTER.finditer(text):
        offset = match.start(1)
        for name in re.split(r"(, ?)", match.group(1)):  # "yarn,curi" is two users
            if name and not name.startswith(","):
                spans.append((offset, offset + len(name), "USER"))
            offset += len(name)
    for match in re.finditer(r"(?<=service ')[^']+(?=')|(?<=service\()\w+(?=\))", text):
        spans.append((match.start(), match.end(), "SERVICE"))
    for match in re.finditer(r"\bbglio\d+\b", text):  # BlueGene/L I/O node names
        spans.append((match.start(), match.end(), "HOST"))
    for match in re.finditer(r"(?<=KeeperErrorCode = )\w+", text):
        spans.append((match.start(), match.end(), "ERROR_CODE"))
    for match in re.finditer(r"(?<=exited abnormally with \[)\d+(?=\])", text):
        spans.append((match.start(), match.end(), "ERROR_CODE"))


def resolve_overlaps(spans: list[Span]) -> list[Span]:
    """Keep the longest span where spans overlap (outer entities win)."""
    kept: list[Span] = []
    for span in sorted(set(spans), key=lambda s: (-(s[1] - s[0]), s[0])):
        if all(span[1] <= k[0] or span[0] >= k[1] for k in kept):
            kept.append(span)
    return sorted(kept)


def label_line(content: str, template: str) -> list[Span] | None:
    """Entity spans for one Loghub line, or None when the template does not align."""
    variables = variable_spans(content, template)
    if "<*>" in template and not variables:
        return None
    spans: list[Span] = []
    for start, end in variables:
        _type_variable(content, start, end, spans)
    _constant_entities(content, spans)
    return resolve_overlaps(spans)


def loghub_rows(system: str) -> Iterator[dict[str, str]]:
    path = SHARED_DATA / "loghub" / system / f"{system}_2k.log_structured.csv"
    if not path.exists():
        raise SystemExit(f"missing {path}: the shared Loghub data is expected at ../shared/data")
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


def build(per_event: int, per_system: int, seed: int) -> list[dict[str, object]]:
    rng = random.Random(seed)
    records: list[dict[str, object]] = []
    for system in SYSTEMS:
        by_event: dict[str, list[dict[str, str]]] = defaultdict(list)
        for row in loghub_rows(system):
            by_event[row["EventId"]].append(row)
        # stratified: every template is represented; systems with few templates get more each
        quota = max(per_event, -(-per_system // len(by_event)))
        chosen: list[dict[str, str]] = []
        for rows in by_event.values():
            chosen.extend(rng.sample(rows, min(quota, len(rows))))
        rng.shuffle(chosen)
        kept = 0
        for row in sorted(chosen[: per_system * 2], key=lambda r: int(r["LineId"])):
            spans = label_line(row["Content"], row["EventTemplate"])
            if spans is None or kept >= per_system:
                continue
            kept += 1
            records.append(
                {
                    "system": system,
                    "LineId": int(row["LineId"]),
                    "text": row["Content"],
                    "entities": [list(s) for s in spans],
                    "source": "loghub",
                }
            )
    return records


def load_handwritten(path: Path = HANDWRITTEN) -> list[dict[str, object]]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            record["source"] = "handwritten"
            records.append(record)
    return records


def summary(records: list[dict[str, object]]) -> str:
    lines: Counter[str] = Counter()
    labels: Counter[tuple[str, str]] = Counter()
    for record in records:
        system = str(record["system"])
        lines[system] += 1
        for entity in record["entities"]:  # type: ignore[attr-defined]
            labels[(system, entity[2])] += 1
    out = []
    for system in lines:
        per_label = ", ".join(
            f"{lab}={n}" for (sys, lab), n in sorted(labels.items()) if sys == system
        )
        out.append(f"{system}: {lines[system]} lines; {per_label}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--per-event", type=int, default=4, help="lines sampled per template")
    parser.add_argument("--per-system", type=int, default=200, help="cap on lines per system")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    records = build(args.per_event, args.per_system, args.seed)
    if HANDWRITTEN.exists():
        records.extend(load_handwritten())
    with args.output.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {len(records)} lines to {args.output}")
    print(summary(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
