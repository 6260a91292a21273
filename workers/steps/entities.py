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
numeric/hex words -> a/A) and what the ruler finds is cached per distinct mask. The
mask preserves length *and* character class, so spans found on the mask are the same
character offsets in the real line, and every pattern (which only uses classes such as
``\\d`` or ``[0-9a-f]`` for these characters) matches the mask exactly when it matches
the line. Value checks (octets <= 255, port range, HTTP status range) need the real
digits, so they run after mapping back, per line.

A new mask does not always cost a ruler run: its tokens are replaced by the
representative of their *token class* (words satisfying exactly the same token
predicates of the patterns, see `_TokenClasses`), and the ruler runs once per distinct
sequence of classes, in token offsets that map back to any mask of that sequence. An IP
with other digit counts, another file name or another user name is the same class.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import spacy
from spacy.language import Language
from spacy.matcher import Matcher
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
        words, spaces = split_tokens(text)
        return Doc(self.vocab, words=words, spaces=spaces)


def split_tokens(text: str) -> tuple[list[str], list[bool]]:
    """The words of `LogTokenizer` and whether one space follows each."""
    words: list[str] = []
    spaces: list[bool] = []
    position = 0
    for match in _TOKEN_RE.finditer(text):
        start = match.start()
        if start != position:
            _add_gap(text[position:start], words, spaces)
        words.append(match.group(0))
        spaces.append(False)
        position = match.end()
    if position != len(text):
        _add_gap(text[position:], words, spaces)
    return words, spaces


def _add_gap(gap: str, words: list[str], spaces: list[bool]) -> None:
    if words and gap[0] == " ":
        spaces[-1] = True
        gap = gap[1:]
    if gap:
        words.append(gap)
        spaces.append(False)


# --- token classes --------------------------------------------------------------------

_CLASS_ATTRS = {"TEXT": False, "ORTH": False, "LOWER": True}  # attribute -> lower-cased?
_CONTEXT_KEYS = {"OP", "SPACY"}  # not a property of the word; SPACY is kept in the key


class _TokenClasses:
    """Words -> class ids, such that two words of a class satisfy exactly the same token
    predicates of the patterns and are both whitespace or both not.

    Why: a doc whose words are swapped for their class's representative gets the same
    matches from spaCy's matchers (which only see the predicates' outcomes and the SPACY
    flag), so masks with different words but one sequence of classes share one ruler run.
    Understood: TEXT/ORTH/LOWER with a string, IN, NOT_IN or REGEX (spaCy: ``re.search``).
    A pattern using anything else makes every word its own class: slower, never wrong.
    """

    def __init__(self, token_specs: Iterable[dict[str, Any]], phrase_words: Iterable[str]) -> None:
        self.exact = False  # True: a predicate not understood here, no sharing of classes
        self._text_literals: set[str] = set(phrase_words)  # phrase patterns match on ORTH
        self._lower_literals: set[str] = set()
        regexes: dict[tuple[bool, str], re.Pattern[str]] = {}
        for spec in token_specs:
            for key, value in spec.items():
                if key.upper() in _CONTEXT_KEYS:
                    continue
                lowered = _CLASS_ATTRS.get(key.upper())
                literals = self._lower_literals if lowered else self._text_literals
                if lowered is None:
                    self.exact = True
                elif isinstance(value, str):
                    literals.add(value)
                elif isinstance(value, dict):
                    for predicate, argument in value.items():
                        if predicate == "REGEX" and isinstance(argument, str):
                            regexes.setdefault((lowered, argument), re.compile(argument))
                        elif predicate in ("IN", "NOT_IN") and isinstance(argument, list) and all(
                                isinstance(item, str) for item in argument):
                            literals.update(argument)
                        else:
                            self.exact = True
                else:
                    self.exact = True
        self._text_regexes = tuple(rx for (lowered, _), rx in regexes.items() if not lowered)
        self._lower_regexes = tuple(rx for (lowered, _), rx in regexes.items() if lowered)
        self._ids: dict[str, int] = {}  # word -> class id (a cache: cleared when large)
        self._by_signature: dict[object, int] = {}
        self.representatives: list[str] = []  # class id -> the first word seen of it

    def signature(self, word: str) -> object:
        """Equal for two words exactly when every understood predicate agrees on them."""
        if self.exact:
            return word
        lower = word.lower()
        bits = 0
        for bit, regex in enumerate(self._text_regexes):
            if regex.search(word) is not None:
                bits |= 1 << bit
        shift = len(self._text_regexes)
        for bit, regex in enumerate(self._lower_regexes, shift):
            if regex.search(lower) is not None:
                bits |= 1 << bit
        # A literal word decides the equality/IN/NOT_IN predicates by itself; any other word
        # fails every equality and IN and passes every NOT_IN, like all other non-literals.
        return (word if word in self._text_literals else None,
                lower if lower in self._lower_literals else None,
                bits, word.isspace())

    def key(self, words: Sequence[str], spaces: Sequence[bool]) -> tuple[int, ...]:
        """The doc's class sequence, with each token's SPACY flag in the low bit."""
        ids = self._ids
        out = []
        for word, space in zip(words, spaces, strict=True):
            class_id = ids.get(word)
            if class_id is None:
                class_id = self._new_word(word)
            out.append(class_id * 2 + space)
        return tuple(out)

    def _new_word(self, word: str) -> int:
        signature = self.signature(word)
        class_id = self._by_signature.get(signature)
        if class_id is None:
            class_id = self._by_signature[signature] = len(self.representatives)
            self.representatives.append(word)
        if len(self._ids) >= _MAX_CACHED_WORDS:
            self._ids.clear()  # ids stay valid: they live in _by_signature
        self._ids[word] = class_id
        return class_id

    def doc(self, vocab: Vocab, key: tuple[int, ...]) -> Doc:
        """A doc of representatives with the class sequence `key`."""
        return Doc(vocab, words=[self.representatives[item >> 1] for item in key],
                   spaces=[bool(item & 1) for item in key])

    def clear(self) -> None:
        self._ids.clear()
        self._by_signature.clear()
        self.representatives.clear()


class _Joins:
    """Whether one match of the patterns can cover two adjacent tokens, by their classes.

    Why: where no match can cover a token and the next, a doc splits into pieces the ruler
    can run on apart, and pieces ("from <IP> port <n>") recur across far more lines than
    whole lines do. Two tokens can be in one match only if some pattern has a token spec
    the first satisfies followed by one the second satisfies (directly, past optional specs,
    or a repeat of a ``*``/``+`` spec); satisfying is asked of spaCy itself, on each class's
    representative, with SPACY conditions left out (so the answer errs towards "joined").
    A quantifier other than ?, * and + joins everything: no splitting, never wrong.
    """

    def __init__(self, nlp: Language, patterns: Iterable[dict[str, Any]], classes: _TokenClasses) -> None:
        self.split = True
        self._classes = classes
        self._vocab = nlp.vocab
        self._matcher = Matcher(nlp.vocab)
        self._spec_of: dict[int, int] = {}  # match id -> spec index
        follows: list[set[int]] = []  # spec index -> specs that may come next in a match
        for entry in patterns:
            pattern = entry["pattern"]
            tokens = ([{"ORTH": token.text} for token in nlp.make_doc(pattern)]
                      if isinstance(pattern, str) else pattern)
            first = len(follows)
            ops = [str(token.get("OP", "")) for token in tokens]
            if any(op not in ("", "?", "*", "+") for op in ops):
                self.split = False
            for offset, token in enumerate(tokens):
                index = first + offset
                follows.append({index} if ops[offset] in ("*", "+") else set())
                spec = {key: value for key, value in token.items() if key.upper() not in _CONTEXT_KEYS}
                self._matcher.add(f"spec{index}", [[spec]])
                self._spec_of[self._vocab.strings[f"spec{index}"]] = index
            for offset in range(len(tokens)):
                for later in range(offset + 1, len(tokens)):
                    follows[first + offset].add(first + later)
                    if ops[later] not in ("?", "*"):
                        break  # a required spec: nothing beyond it comes next
        self._follows = follows
        self._satisfied: dict[int, frozenset[int]] = {}  # class id -> specs its words satisfy
        self._joined: dict[tuple[int, int], bool] = {}

    def _specs(self, class_id: int) -> frozenset[int]:
        specs = self._satisfied.get(class_id)
        if specs is None:
            doc = Doc(self._vocab, words=[self._classes.representatives[class_id]], spaces=[False])
            specs = self._satisfied[class_id] = frozenset(
                self._spec_of[match_id] for match_id, _, _ in self._matcher(doc))
        return specs

    def joined(self, left: int, right: int) -> bool:
        """Whether a match may cover a token of class `left` and the next, of class `right`."""
        pair = (left, right)
        joined = self._joined.get(pair)
        if joined is None:
            after = self._specs(right)
            joined = self._joined[pair] = not self.split or any(
                not after.isdisjoint(self._follows[spec]) for spec in self._specs(left))
        return joined

    def pieces(self, key: tuple[int, ...]) -> list[tuple[int, tuple[int, ...]]]:
        """(first token, class sequence) of each piece of `key` no match crosses."""
        out = []
        start = 0
        for index in range(1, len(key)):
            if not self.joined(key[index - 1] >> 1, key[index] >> 1):
                out.append((start, key[start:index]))
                start = index
        out.append((start, key[start:]))
        return out

    def clear(self) -> None:
        self._satisfied.clear()
        self._joined.clear()


# --- value checks run on the real text -----------------------------------------------

Candidate = tuple[str, int, int, str]  # label, start, end, check name ("" = none)


@lru_cache(maxsize=65_536)  # addresses repeat line after line; a hit is ~10x cheaper
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
_MAX_CACHED_WORDS = 200_000


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
        self.cache_hits = 0  # of the per-shape cache
        self.cache_misses = 0
        self.ruler_runs = 0  # docs the spaCy pipeline actually ran on
        self._cache: OrderedDict[str, _ShapePlan] = OrderedDict()
        # piece's class sequence -> (label, first token, token after the last, check) of its matches
        self._runs: dict[tuple[int, ...], tuple[Candidate, ...]] = {}
        self._trim: dict[str, tuple[int | None, int | None, str]] = {}
        self._priority: dict[str, int] = {}
        patterns = load_patterns(patterns_path)
        self.nlp = self._build_pipeline(patterns)
        self._classes = _TokenClasses(
            (spec for entry in patterns if isinstance(entry["pattern"], list) for spec in entry["pattern"]),
            (token.text for entry in patterns if isinstance(entry["pattern"], str)
             for token in self.nlp.make_doc(entry["pattern"])),
        )
        self._joins = _Joins(self.nlp, patterns, self._classes)

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
                    # (_TokenClasses assumes ORTH here: phrase words are text literals)
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

    def _token_candidates(self, doc: Doc) -> set[Candidate]:
        """(label, first token, token after the last, check) of each trimmed match."""
        found: set[Candidate] = set()
        for span in doc.spans[SPANS_KEY]:
            keep_start, keep_stop, check = self._trim[span.id_]
            kept = span[keep_start:keep_stop]  # token slice of the match
            if len(kept) and not kept.text.isspace():
                found.add((span.label_, kept.start, kept.end, check))
        return found

    def _candidates(self, doc: Doc) -> tuple[Candidate, ...]:
        """The trimmed matches of a doc of the real (or masked) text, in character offsets."""
        found = {(label, doc[start].idx, doc[end - 1].idx + len(doc[end - 1]), check)
                 for label, start, end, check in self._token_candidates(doc)}
        return tuple(sorted(found, key=lambda c: (c[1], c[2], c[0])))

    def _lookup(self, shapes: Sequence[str]) -> list[_ShapePlan]:
        """Plan per shape: cached shapes are reused, the rest are planned by `_plan`."""
        if self.cache_size <= 0:  # no caching at all: the ruler runs on every shape
            self.cache_misses += len(shapes)
            self.ruler_runs += len(shapes)
            docs = self.nlp.pipe(shapes, batch_size=self.batch_size)
            return [_ShapePlan(s, self._candidates(d)) for s, d in zip(shapes, docs, strict=True)]
        missing = list(dict.fromkeys(s for s in shapes if s not in self._cache))
        self.cache_misses += len(missing)
        self.cache_hits += len(shapes) - len(missing)
        fresh = self._plan(missing) if missing else {}
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

    def _plan(self, shapes: Sequence[str]) -> dict[str, _ShapePlan]:
        """Plans of new shapes; the ruler runs only on pieces of class sequences not seen
        before (see `_TokenClasses` and `_Joins`)."""
        classes, joins, runs = self._classes, self._joins, self._runs
        tokens = [split_tokens(shape) for shape in shapes]
        pieces = [joins.pieces(classes.key(words, spaces)) for words, spaces in tokens]
        unseen = [piece for piece in dict.fromkeys(
            piece for shape_pieces in pieces for _, piece in shape_pieces) if piece not in runs]
        self.ruler_runs += len(unseen)
        docs = self.nlp.pipe((classes.doc(self.nlp.vocab, piece) for piece in unseen), batch_size=self.batch_size)
        found = {piece: tuple(self._token_candidates(doc)) for piece, doc in zip(unseen, docs, strict=True)}
        plans = {}
        for shape, (words, spaces), shape_pieces in zip(shapes, tokens, pieces, strict=True):
            matches: list[Candidate] = []
            for first, piece in shape_pieces:
                piece_matches = found.get(piece)
                if piece_matches is None:
                    piece_matches = found[piece] = runs[piece]
                matches.extend((label, first + start, first + stop, check)
                               for label, start, stop, check in piece_matches)
            plans[shape] = _ShapePlan(shape, _in_characters(matches, words, spaces))
        runs.update((piece, found[piece]) for piece in unseen)
        while len(runs) > self.cache_size:
            del runs[next(iter(runs))]  # oldest first
        return plans

    def extract_batch(self, texts: Sequence[str]) -> list[list[Entity]]:
        shapes = [shape_of(text) for text in texts]
        priority = self._priority
        return [
            [Entity(label, text[start:end], start, end) for label, start, end in plan.spans(text, priority)]
            for text, plan in zip(texts, self._lookup(shapes), strict=True)
        ]

    def clear_cache(self) -> None:
        """Forget every cached result (shapes, class sequences, word classes)."""
        self._cache.clear()
        self._runs.clear()
        self._classes.clear()
        self._joins.clear()
        self.cache_hits = self.cache_misses = self.ruler_runs = 0

    def extract(self, text: str) -> list[Entity]:
        return self.extract_batch([text])[0]


def _in_characters(
    matches: Iterable[Candidate], words: Sequence[str], spaces: Sequence[bool]
) -> tuple[Candidate, ...]:
    """Token-offset candidates -> character offsets in the text of `words`/`spaces`."""
    starts = []
    position = 0
    for word, space in zip(words, spaces, strict=True):
        starts.append(position)
        position += len(word) + space
    found = {(label, starts[first], starts[stop - 1] + len(words[stop - 1]), check)
             for label, first, stop, check in matches}
    return tuple(sorted(found, key=lambda c: (c[1], c[2], c[0])))
