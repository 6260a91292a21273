"""Entity extraction for operations log lines (pure: no I/O after construction).

Labels: HOST, IP, PORT, SERVICE, DATABASE, URL, PATH, USER, ERROR_CODE, EXCEPTION,
HTTP_STATUS, K8S_POD, K8S_NAMESPACE, REQUEST_ID.

The rules live in `entity_patterns.jsonl` (spaCy EntityRuler pattern format plus two
optional keys of ours: ``keep`` = [start, stop) token slice of the match that is the
entity, so context words such as "port" in ``port 22`` are not part of it, and
``check`` = a validator applied to the real characters). They run in a blank English
pipeline with a log-aware tokenizer and one `span_ruler` that keeps overlapping
matches; overlaps are resolved here, after trimming and validation.

Speed: log lines repeat their shape. Each line is masked (digits -> 0, hex letters in
numeric/hex words -> a/A), the ruler runs once per distinct mask, and the result is
cached. The mask preserves length *and* character class, so spans found on the
mask are the same character offsets in the real line, and every pattern (which only
uses classes such as ``\\d`` or ``[0-9a-f]`` for these characters) matches the mask
exactly when it matches the line. Value checks (octets <= 255, port range, HTTP
status range) need the real digits, so they run after mapping back, per line.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import spacy
from spacy.language import Language
from spacy.pipeline import SpanRuler
from spacy.tokens import Doc
from spacy.vocab import Vocab

PATTERNS_PATH = Path(__file__).with_name("entity_patterns.jsonl")
SPANS_KEY = "polaris_entities"

LABELS = (
    "HOST", "IP", "PORT", "SERVICE", "DATABASE", "URL", "PATH", "USER", "ERROR_CODE",
    "EXCEPTION", "HTTP_STATUS", "K8S_POD", "K8S_NAMESPACE", "REQUEST_ID",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Entity:
    label: str
    text: str
    start: int  # character offsets into the line
    end: int


# --- shape mask -----------------------------------------------------------------------

# Numbers (not glued to a preceding letter, so "neo4j"/"log4j" keep their digit),
# 0x-hex, and standalone hex words with a digit (session ids, hashes).
_MASK_RE = re.compile(
    r"0[xX][0-9A-Fa-f]+"
    r"|(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*[0-9])[0-9A-Fa-f]{6,}(?![0-9A-Za-z])"
    r"|(?<![A-Za-z])[0-9]+"
)
_MASK_TABLE = str.maketrans("0123456789abcdefABCDEF", "0000000000aaaaaaAAAAAA")


def shape_of(text: str) -> str:
    """Length- and class-preserving mask: lines differing only in numbers/ids share it."""
    return _MASK_RE.sub(lambda m: m.group(0).translate(_MASK_TABLE), text)


# --- tokenizer ------------------------------------------------------------------------

_IP = r"\d{1,3}(?:\.\d{1,3}){3}(?![\w-]|\.\d)"
_WORD_CHARS = r"[\w\-/~%+$#*!]"  # no "@": "user@host", "Class@0.0.0.0:80" split
_TOKEN_RE = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"  # ISO time
    r"|"
    r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s\[\](){}<>\"',;]*[^\s\[\](){}<>\"',;.:]"  # URL
    r"|jar:file:[^\s,;]+"
    r"|[A-Za-z]:\\[^\s,;]+"  # windows path
    rf"|/(?={_IP})"  # the "/" of "/10.0.0.1": the IP is its own token
    rf"|[\w.\-]+(?=/{_IP})"  # "host/10.0.0.1" -> host, /, ip
    rf"|{_WORD_CHARS}+(?:\.+{_WORD_CHARS}+)*"  # words, dotted names, paths; no edge dots
    r"|\S"
)


class LogTokenizer:
    """Splits on whitespace and log punctuation, keeping IPs, paths, URLs whole.

    ``10.0.0.1:8080`` -> ``10.0.0.1 : 8080``; ``user=root`` -> ``user = root``.
    Whitespace beyond one space becomes its own token so ``doc.text == text``.
    """

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab

    def __call__(self, text: str) -> Doc:
        words: list[str] = []
        spaces: list[bool] = []
        position = 0
        for match in _TOKEN_RE.finditer(text):
            self._add_gap(text[position : match.start()], words, spaces)
            words.append(match.group(0))
            spaces.append(False)
            position = match.end()
        self._add_gap(text[position:], words, spaces)
        return Doc(self.vocab, words=words, spaces=spaces)

    @staticmethod
    def _add_gap(gap: str, words: list[str], spaces: list[bool]) -> None:
        if not gap:
            return
        if words and gap[0] == " ":
            spaces[-1] = True
            gap = gap[1:]
        if gap:
            words.append(gap)
            spaces.append(False)


# --- value checks run on the real text -----------------------------------------------

Candidate = tuple[str, int, int, str]  # label, start, end, check name ("" = none)


def _check_ipv4(text: str) -> bool:
    return all(int(part) <= 255 for part in text.split("."))


def _check_port(text: str) -> bool:
    return 0 < int(text) <= 65535


def _check_http_status(text: str) -> bool:
    return 100 <= int(text) <= 599


_VALUE_CHECKS: dict[str, Callable[[str], bool]] = {
    "ipv4": _check_ipv4,
    "port": _check_port,
    "http_status": _check_http_status,
}


def _apply_check(line: str, candidate: Candidate) -> list[tuple[str, int, int]]:
    """Validate or reshape one candidate on the real characters of the line."""
    label, start, end, check = candidate
    text = line[start:end]
    if check == "url":  # Spark input splits: "hdfs://h:9000/f.log:0+7292" -> drop ":0+7292"
        split = re.search(r":\d+\+\d+$", text)
        return [(label, start, end - len(split.group(0)) if split else end)]
    if check == "after_slash":  # kubectl's "pod/name" -> name
        return [(label, start + text.index("/") + 1, end)]
    if check == "k8s_namespace_pod":  # kubelet writes pod="namespace/name"
        slash = start + text.index("/")
        return [("K8S_NAMESPACE", start, slash), ("K8S_POD", slash + 1, end)]
    if check and not _VALUE_CHECKS[check](text):
        return []
    return [(label, start, end)]


_SHAPE_CHECKS = frozenset({"", "url", "after_slash", "k8s_namespace_pod"})
_MAX_OUTCOMES_PER_SHAPE = 256


class _ShapePlan:
    """What a shape's candidates become, with as much as possible decided once per shape.

    The reshaping checks (url, after_slash, k8s_namespace_pod) only look at characters the
    mask keeps (":", "+", "/", digit-ness), so they give the same spans on the shape as on
    any line of it, and run once. The value checks need the real digits: per line only they
    run, and the overlap resolution is cached per combination of their outcomes.
    """

    __slots__ = ("candidates", "checked", "fixed", "resolved")

    def __init__(self, shape: str, candidates: tuple[Candidate, ...]) -> None:
        self.candidates = candidates
        self.fixed: list[tuple[str, int, int]] = []
        self.checked: list[tuple[str, int, int, Callable[[str], bool]]] = []
        for candidate in candidates:
            label, start, end, check = candidate
            if check in _SHAPE_CHECKS:
                self.fixed.extend(_apply_check(shape, candidate))
            else:
                self.checked.append((label, start, end, _VALUE_CHECKS[check]))
        self.resolved: dict[tuple[bool, ...], tuple[tuple[str, int, int], ...]] = {}

    def spans(self, line: str, priority: dict[str, int]) -> tuple[tuple[str, int, int], ...]:
        """Non-empty, non-overlapping (label, start, end) of this line, in text order."""
        outcome = tuple([check(line[start:end]) for _, start, end, check in self.checked])
        spans = self.resolved.get(outcome)
        if spans is None:
            passed = [(label, start, end) for (label, start, end, _), ok
                      in zip(self.checked, outcome, strict=True) if ok]
            spans = tuple(
                span for span in _resolve_overlaps([*self.fixed, *passed], priority)
                if span[2] > span[1]
            )
            if len(self.resolved) < _MAX_OUTCOMES_PER_SHAPE:
                self.resolved[outcome] = spans
        return spans


def _resolve_overlaps(
    spans: Iterable[tuple[str, int, int]], priority: dict[str, int]
) -> list[tuple[str, int, int]]:
    """Longest span wins; equal length -> label listed earlier in the pattern file."""
    kept: list[tuple[str, int, int]] = []
    ordered = sorted(set(spans), key=lambda s: (s[1] - s[2], priority[s[0]], s[1]))
    for span in ordered:
        if all(span[2] <= other[1] or span[1] >= other[2] for other in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: (s[1], s[2]))


# --- extractor ------------------------------------------------------------------------


def load_patterns(path: Path = PATTERNS_PATH) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class EntityExtractor:
    """Build once, then call `extract_batch` (or `extract`) as often as needed."""

    def __init__(
        self,
        patterns_path: Path = PATTERNS_PATH,
        cache_size: int = 50_000,
        batch_size: int = 512,
    ) -> None:
        self.cache_size = cache_size
        self.batch_size = batch_size
        self.cache_hits = 0
        self.cache_misses = 0
        self._cache: OrderedDict[str, _ShapePlan] = OrderedDict()
        self._trim: dict[str, tuple[int | None, int | None, str]] = {}
        self._priority: dict[str, int] = {}
        self.nlp = self._build_pipeline(load_patterns(patterns_path))

    def _build_pipeline(self, patterns: list[dict[str, Any]]) -> Language:
        nlp = spacy.blank("en")
        nlp.tokenizer = LogTokenizer(nlp.vocab)
        ruler = cast(
            SpanRuler,
            nlp.add_pipe(
                "span_ruler",
                config={
                    "spans_key": SPANS_KEY,
                    "spans_filter": None,  # keep overlaps: context patterns are trimmed first
                    "annotate_ents": False,
                    # case matters: "DataNode" is the daemon, "datanode(s)" is prose
                    "phrase_matcher_attr": "ORTH",
                    "validate": True,
                },
            ),
        )
        ruler_patterns = []
        for index, entry in enumerate(patterns):
            pattern_id = f"p{index}"
            keep = entry.get("keep") or [None, None]
            self._trim[pattern_id] = (keep[0], keep[1], entry.get("check", ""))
            self._priority.setdefault(entry["label"], len(self._priority))
            ruler_patterns.append(
                {"label": entry["label"], "pattern": entry["pattern"], "id": pattern_id}
            )
        ruler.add_patterns(ruler_patterns)
        return nlp

    def _candidates(self, doc: Doc) -> tuple[Candidate, ...]:
        found: set[Candidate] = set()
        for span in doc.spans[SPANS_KEY]:
            keep_start, keep_stop, check = self._trim[span.id_]
            kept = span[keep_start:keep_stop]  # token slice of the match
            if len(kept) and not kept.text.isspace():
                found.add((span.label_, kept.start_char, kept.end_char, check))
        return tuple(sorted(found, key=lambda c: (c[1], c[2], c[0])))

    def _lookup(self, shapes: Sequence[str]) -> list[_ShapePlan]:
        """Plan per shape: cached shapes are reused, the rest go through nlp.pipe."""
        if self.cache_size <= 0:
            self.cache_misses += len(shapes)
            docs = self.nlp.pipe(shapes, batch_size=self.batch_size)
            return [_ShapePlan(s, self._candidates(d)) for s, d in zip(shapes, docs, strict=True)]
        missing = list(dict.fromkeys(s for s in shapes if s not in self._cache))
        self.cache_misses += len(missing)
        self.cache_hits += len(shapes) - len(missing)
        docs = self.nlp.pipe(missing, batch_size=self.batch_size)
        fresh = {s: _ShapePlan(s, self._candidates(d)) for s, d in zip(missing, docs, strict=True)}
        results = []
        for shape in shapes:
            plan = fresh.get(shape)
            if plan is None:
                plan = self._cache[shape]
                self._cache.move_to_end(shape)
            results.append(plan)
        for shape, plan in fresh.items():
            self._cache[shape] = plan
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)  # least recently used
        return results

    def extract_batch(self, texts: Sequence[str]) -> list[list[Entity]]:
        shapes = [shape_of(text) for text in texts]
        priority = self._priority
        return [
            [Entity(label, text[start:end], start, end) for label, start, end in plan.spans(text, priority)]
            for text, plan in zip(texts, self._lookup(shapes), strict=True)
        ]

    def clear_cache(self) -> None:
        self._cache.clear()
        self.cache_hits = self.cache_misses = 0

    def extract(self, text: str) -> list[Entity]:
        return self.extract_batch([text])[0]
